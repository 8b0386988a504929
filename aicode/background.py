"""Tracks the asyncio tasks the server starts outside a request, so shutdown can stop them all."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import structlog

__all__ = ["BackgroundTasks"]

log = structlog.get_logger(__name__)


class BackgroundTasks:
    """A set of running tasks: failures are logged (never lost silently), shutdown cancels the rest."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        if self._closed:
            coro.close()
            raise RuntimeError("the server is shutting down")
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background_task.failed", task=task.get_name(), exc_info=task.exception())

    async def join(self, prefix: str = "") -> None:
        """Wait until the tasks whose name starts with `prefix` have finished (long-lived ones never do)."""
        while matching := [t for t in self._tasks if t.get_name().startswith(prefix)]:
            await asyncio.gather(*matching, return_exceptions=True)

    async def close(self) -> None:
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
