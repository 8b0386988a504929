"""Interleaves heartbeats into a quiet event stream, so proxies keep the connection open."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TypeVar

import structlog

__all__ = ["with_heartbeats"]

log = structlog.get_logger(__name__)

T = TypeVar("T")
_END = object()


async def with_heartbeats(stream: AsyncIterator[T], interval_s: float) -> AsyncIterator[T | None]:
    """The items of `stream`, with None whenever `interval_s` passes without one.

    The stream is read by a task of its own: waiting on it with a timeout directly would cancel the
    generator mid-step and end it.
    """
    items: asyncio.Queue[object] = asyncio.Queue(maxsize=256)

    async def pump() -> None:
        try:
            async for item in stream:
                await items.put(item)
        except Exception as exc:  # the reader ends the response; the cause goes to the log
            log.error("stream.failed", exc_info=exc)
        finally:
            await items.put(_END)

    reader = asyncio.create_task(pump())
    try:
        while True:
            try:
                # Waiting with a time limit costs a task and a timer: only when nothing is ready.
                item = items.get_nowait() if not items.empty() else await asyncio.wait_for(items.get(), interval_s)
            except TimeoutError:
                yield None
                continue
            if item is _END:
                return
            yield item  # type: ignore[misc]
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
