"""The task supervisor: an in-process queue drained by at most N workers, started and stopped by the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
from uuid import UUID

import structlog

from aicode.background import BackgroundTasks
from aicode.containers.runtime import ContainerError, ContainerRuntime
from aicode.tasks.models import TaskStatus
from aicode.tasks.repo import TaskRepo
from aicode.tasks.runner import StopSignal, TaskRunner

__all__ = ["TaskSupervisor"]

log = structlog.get_logger(__name__)

_SHUTDOWN_GRACE_S = 20.0


class TaskSupervisor:
    """Runs queued tasks, never more than `max_concurrent` at once, whatever is submitted."""

    def __init__(
        self, runner: TaskRunner, tasks: TaskRepo, runtime: ContainerRuntime,
        background: BackgroundTasks, *, max_concurrent: int, server_id: str,
    ) -> None:
        self._runner = runner
        self._tasks = tasks
        self._runtime = runtime
        self._background = background
        self._max_concurrent = max_concurrent
        self._server_id = server_id
        self._queue: asyncio.Queue[UUID] = asyncio.Queue()
        self._running: dict[UUID, StopSignal] = {}
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def running(self) -> int:
        return len(self._running)

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    async def start(self) -> None:
        """Recover from a previous run, then start the workers."""
        await self._remove_orphans()
        for task_id in await self._tasks.ids_with_status(TaskStatus.RUNNING):
            await self._runner.recover(task_id)
        for task_id in await self._tasks.ids_with_status(TaskStatus.QUEUED):
            self.enqueue(task_id)
        for number in range(self._max_concurrent):
            self._background.spawn(self._worker(), name=f"task-worker-{number}")

    async def _remove_orphans(self) -> None:
        """Containers this server left behind when it last stopped abruptly (their turns are marked below)."""
        try:
            for container_id in await self._runtime.list_ids({"aicode.server": self._server_id}):
                await self._runtime.remove(container_id)
        except ContainerError as exc:
            log.warning("containers.orphan_cleanup_failed", error=str(exc))

    def enqueue(self, task_id: UUID) -> None:
        self._queue.put_nowait(task_id)

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

    async def _worker(self) -> None:
        while True:
            task_id = await self._queue.get()
            signal = StopSignal()
            self._running[task_id] = signal
            self._idle.clear()
            try:
                await self._runner.run(task_id, signal)
            except Exception as exc:  # the runner records failures itself; this is the last line of defence
                log.error("task.worker_error", task_id=str(task_id), exc_info=exc)
            finally:
                del self._running[task_id]
                if not self._running:
                    self._idle.set()
