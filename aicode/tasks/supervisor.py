"""The task supervisor: queued turns started fairly within the limits, started and stopped by the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import dataclass
from uuid import UUID

import structlog

from aicode.background import BackgroundTasks
from aicode.containers.runtime import ContainerError, ContainerRuntime
from aicode.tasks.fair_queue import FairQueue, QueuedTurn
from aicode.tasks.models import TaskRecord, TaskStatus
from aicode.tasks.repo import TaskRepo
from aicode.tasks.runner import StopSignal, TaskRunner

__all__ = ["RunLimits", "TaskSupervisor"]

log = structlog.get_logger(__name__)

_SHUTDOWN_GRACE_S = 20.0


@dataclass(frozen=True, slots=True)
class RunLimits:
    """How many turns may run at once: in all, per requester, per workspace."""

    total: int
    per_user: int
    per_workspace: int


class TaskSupervisor:
    """Runs queued turns, never more at once than the limits allow, whatever is submitted."""

    def __init__(
        self, runner: TaskRunner, tasks: TaskRepo, runtime: ContainerRuntime,
        background: BackgroundTasks, *, limits: RunLimits, server_id: str,
    ) -> None:
        self._runner = runner
        self._tasks = tasks
        self._runtime = runtime
        self._background = background
        self._limits = limits
        self._server_id = server_id
        self._queue = FairQueue()
        self._slots = asyncio.Semaphore(limits.total)
        self._running: dict[UUID, StopSignal] = {}
        self._by_user: Counter[UUID] = Counter()
        self._by_workspace: Counter[UUID] = Counter()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def running(self) -> int:
        return len(self._running)

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def start(self) -> None:
        """Recover from a previous run, then start handing out turns."""
        await self._remove_orphans()
        for task_id in await self._tasks.ids_with_status(TaskStatus.RUNNING):
            await self._runner.recover(task_id)
        for task_id in await self._tasks.ids_with_status(TaskStatus.QUEUED):
            if (task := await self._tasks.get(task_id)) is not None:
                await self.enqueue(task)
        self._background.spawn(self._dispatch(), name="task-dispatcher")

    async def _remove_orphans(self) -> None:
        """Containers this server left behind when it last stopped abruptly (their turns are marked below)."""
        try:
            for container_id in await self._runtime.list_ids({"aicode.server": self._server_id}):
                await self._runtime.remove(container_id)
        except ContainerError as exc:
            log.warning("containers.orphan_cleanup_failed", error=str(exc))

    async def enqueue(self, task: TaskRecord) -> None:
        await self._queue.put(QueuedTurn(task.id, task.turn_user_id, task.workspace_id))

    def discard(self, task_id: UUID) -> None:
        """A queued turn that was cancelled: it gives up its place."""
        self._queue.discard(task_id)

    def cancel(self, task_id: UUID) -> bool:
        """Ask a running turn to stop; False if it is not running in this process."""
        signal = self._running.get(task_id)
        if signal is None:
            return False
        signal.stop("cancelled")
        return True

    async def stop(self) -> None:
        """Stop running turns (they commit their work as partial and end `interrupted`), then the workers."""
        for signal in self._running.values():
            signal.stop("shutdown")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), _SHUTDOWN_GRACE_S)
        await self._runner.drain()

    def _eligible(self, turn: QueuedTurn) -> bool:
        return (self._by_user[turn.user_id] < self._limits.per_user
                and self._by_workspace[turn.workspace_id] < self._limits.per_workspace)

    async def _dispatch(self) -> None:
        while True:
            await self._slots.acquire()
            try:
                turn = await self._queue.take(self._eligible)
            except BaseException:
                self._slots.release()
                raise
            self._by_user[turn.user_id] += 1
            self._by_workspace[turn.workspace_id] += 1
            signal = StopSignal()
            self._running[turn.task_id] = signal
            self._idle.clear()
            self._background.spawn(self._run(turn, signal), name=f"task-{turn.task_id}")

    async def _run(self, turn: QueuedTurn, signal: StopSignal) -> None:
        try:
            await self._runner.run(turn.task_id, signal)
        except Exception as exc:  # the runner records failures itself; this is the last line of defence
            log.error("task.worker_error", task_id=str(turn.task_id), exc_info=exc)
        finally:
            del self._running[turn.task_id]
            self._by_user[turn.user_id] -= 1
            self._by_workspace[turn.workspace_id] -= 1
            if not self._running:
                self._idle.set()
            self._slots.release()
            await self._queue.wake()
