"""One agent process in a task's container: its output streamed into events until it exits, is stopped,
or runs out of time."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from uuid import UUID

from aicode.agents.events import LIVE_ONLY, AgentEvent
from aicode.agents.lines import LineSplitter
from aicode.agents.registry import StreamParser
from aicode.containers.runtime import STDERR, ContainerError, ContainerRuntime, ExecResult
from aicode.tasks.events import TaskEventBus
from aicode.tasks.turn_plan import TurnFailure

__all__ = ["AgentExecution", "StopSignal"]

_KILL_GRACE_S = 10.0
_STDERR_TAIL = 4096
_MAX_EVENT_BATCH = 2000

EventBatch = list[tuple[str, dict[str, Any]]]


class StopSignal:
    """Asks a running turn to stop, saying why: `cancelled` by a user or `shutdown` of the server."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._event = asyncio.Event()

    def stop(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self._event.set()

    async def wait(self) -> None:
        await self._event.wait()


class AgentExecution:
    """Runs argv in a container and turns its stdout into the task's events as they come."""

    def __init__(self, runtime: ContainerRuntime, bus: TaskEventBus) -> None:
        self._runtime = runtime
        self._bus = bus

    async def watch(
        self, task_id: UUID, container_id: str, argv: list[str], env: dict[str, str], timeout_s: float,
        parser: StreamParser, result: ExecResult, stop: StopSignal,
    ) -> tuple[str, str | None]:
        """Stream the agent's output until it exits, is stopped, or times out; returns (stderr tail, why ended)."""
        tail = bytearray()
        reader = asyncio.create_task(self._pump(task_id, container_id, argv, env, parser, result, tail))
        stopper = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait({reader, stopper}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
            ended_by = None if reader in done else (stop.reason or "cancelled") if stopper in done else "timeout"
            if ended_by is not None:
                await self._runtime.kill(container_id)
                # A reader that fails because the container was killed under it (a cancel right as the
                # agent starts) is expected: the turn ended the way `ended_by` says, not by that error.
                with contextlib.suppress(TimeoutError, ContainerError):
                    await asyncio.wait_for(asyncio.shield(reader), _KILL_GRACE_S)
            if ended_by is None and reader.done() and reader.exception() is not None:
                exc = reader.exception()
                raise TurnFailure(str(exc)) if isinstance(exc, ContainerError) else exc  # type: ignore[misc]
            return tail.decode(errors="replace"), ended_by
        finally:
            for pending in (reader, stopper):
                pending.cancel()
            await asyncio.gather(reader, stopper, return_exceptions=True)

    async def _pump(
        self, task_id: UUID, container_id: str, argv: list[str], env: dict[str, str],
        parser: StreamParser, result: ExecResult, tail: bytearray,
    ) -> None:
        """Turn output chunks into events; a separate writer stores whatever has piled up in one transaction."""
        pending: asyncio.Queue[EventBatch | None] = asyncio.Queue()
        writer = asyncio.create_task(self._write_events(task_id, pending))
        lines = LineSplitter()
        try:
            async for chunk in self._runtime.run(container_id, argv, env, result):
                if chunk.stream == STDERR:
                    tail.extend(chunk.data)
                    del tail[:-_STDERR_TAIL]
                    continue
                self._route(task_id, [e for line in lines.feed(chunk.data) for e in parser.feed(line)], pending)
            self._route(task_id, [e for line in lines.flush() for e in parser.feed(line)], pending)
        finally:
            pending.put_nowait(None)
            await writer

    def _route(self, task_id: UUID, events: list[AgentEvent], pending: asyncio.Queue[EventBatch | None]) -> None:
        """Live-only events straight to the viewers; the rest to the writer, which stores them in order."""
        live = [(e.type, e.data) for e in events if e.type in LIVE_ONLY]
        stored = [(e.type, e.data) for e in events if e.type not in LIVE_ONLY]
        if live:
            self._bus.broadcast(task_id, live)
        if stored:
            pending.put_nowait(stored)

    async def _write_events(self, task_id: UUID, pending: asyncio.Queue[EventBatch | None]) -> None:
        """Batch by backlog: one event when the agent is quiet, thousands per transaction when it floods."""
        while (first := await pending.get()) is not None:
            batch, finished = list(first), False
            while not pending.empty() and len(batch) < _MAX_EVENT_BATCH:
                more = pending.get_nowait()
                if more is None:
                    finished = True
                    break
                batch.extend(more)
            await self._bus.emit(task_id, batch)
            if finished:
                return
