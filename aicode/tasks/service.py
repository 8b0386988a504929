"""Submitting, reading, following up, cancelling and reviewing tasks, with who-may-see-what checks."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar
from uuid import UUID

import structlog

from aicode import __version__
from aicode.auth.models import UserRecord
from aicode.errors import ConflictError, InvalidInputError, NotFoundError
from aicode.git.checkout import CheckoutError, FileChange
from aicode.git.patches import PatchSeriesError
from aicode.git.store import GitStore
from aicode.streaming.bus import TaskEventBus, WireEvent
from aicode.tasks.models import ACTIVE_STATUSES, TERMINAL_STATUSES, TaskEvent, TaskRecord, TaskStatus
from aicode.tasks.repo import TaskRepo
from aicode.tasks.supervisor import TaskSupervisor
from aicode.workspaces.models import WorkspaceStatus
from aicode.workspaces.service import WorkspaceService

__all__ = ["TaskService"]

log = structlog.get_logger(__name__)

T = TypeVar("T")


class TaskService:
    def __init__(
        self, tasks: TaskRepo, bus: TaskEventBus, workspaces: WorkspaceService, supervisor: TaskSupervisor,
        store: GitStore, *, default_timeout_s: int,
    ) -> None:
        self._tasks = tasks
        self._bus = bus
        self._workspaces = workspaces
        self._supervisor = supervisor
        self._store = store
        self._default_timeout_s = default_timeout_s

    async def submit(self, actor: UserRecord, workspace_id: UUID, fields: dict[str, Any]) -> TaskRecord:
        """Store the task as queued (with its first event) and hand it to the supervisor."""
        workspace = await self._workspaces.get(actor, workspace_id)
        if workspace.status != WorkspaceStatus.READY:
            raise ConflictError(f"the workspace is {workspace.status}, not ready"
                                + (f": {workspace.error}" if workspace.error else ""))
        base_branch = fields.get("base_branch") or workspace.default_branch
        if not base_branch:
            raise InvalidInputError("the workspace has no default branch: give base_branch")
        if not await self._store.branch_exists(workspace.id, base_branch):
            raise InvalidInputError(f"branch {base_branch!r} does not exist in the workspace's repository")
        task_id = uuid.uuid4()
        async with self._bus.batch(task_id) as batch:
            task = await self._tasks.insert(
                batch.conn, id=task_id, workspace_id=workspace.id, user_id=actor.id,
                agent=fields.get("agent") or "claude", max_cost_usd=fields.get("max_cost_usd"),
                prompt=fields["prompt"], pending_prompt=fields["prompt"], model=fields.get("model"),
                max_turns=fields.get("max_turns"), timeout_s=fields.get("timeout_s") or self._default_timeout_s,
                base_branch=base_branch, branch=f"aicode/{task_id}",
            )
            await batch.add([("task.status", {"status": TaskStatus.QUEUED})])
        self._supervisor.enqueue(task.id)
        log.info("task.submitted", task_id=str(task.id), workspace_id=str(workspace.id))
        return task

    async def get(self, actor: UserRecord, task_id: UUID) -> TaskRecord:
        """The task if `actor` may see it (theirs, in their workspace, or an admin); else 404."""
        task = await self._tasks.get(task_id)
        if task is not None and (actor.is_admin or task.user_id == actor.id):
            return task
        if task is not None:
            try:
                await self._workspaces.get(actor, task.workspace_id)
                return task
            except NotFoundError:
                pass
        raise NotFoundError(f"no task with id {task_id}")

    async def list(self, actor: UserRecord, *, workspace_id: UUID | None, status: str | None, limit: int
                   ) -> list[TaskRecord]:
        return await self._tasks.list_visible(None if actor.is_admin else actor.id, workspace_id=workspace_id,
                                              status=status, limit=limit)

    async def follow_up(self, actor: UserRecord, task_id: UUID, prompt: str) -> TaskRecord:
        """Queue another turn on the same session and branch; it runs with `actor`'s credential."""
        await self.get(actor, task_id)
        async with self._bus.batch(task_id) as batch:
            task = await self._tasks.transition(task_id, TaskStatus.QUEUED, allowed_from=tuple(TERMINAL_STATUSES),
                                                conn=batch.conn, pending_prompt=prompt, reopened=True,
                                                turn_user_id=actor.id)
            if task is None:
                raise ConflictError("the task is still queued or running: wait for the turn to end, or cancel it")
            await batch.add([("notice", {"level": "info", "code": "follow_up", "message": prompt,
                                         "by": actor.username}),
                             ("task.status", {"status": TaskStatus.QUEUED})])
        self._supervisor.enqueue(task_id)
        return task

    async def cancel(self, actor: UserRecord, task_id: UUID) -> TaskRecord:
        task = await self.get(actor, task_id)
        if task.status == TaskStatus.QUEUED:
            async with self._bus.batch(task_id) as batch:
                cancelled = await self._tasks.transition(
                    task_id, TaskStatus.CANCELLED, allowed_from=(TaskStatus.QUEUED,), conn=batch.conn,
                    finished=True, pending_prompt=None)
                if cancelled is not None:
                    await batch.add([("task.status", {"status": TaskStatus.CANCELLED})])
                    return cancelled
        if self._supervisor.cancel(task_id):
            log.info("task.cancel_requested", task_id=str(task_id), by=actor.username)
            return await self.get(actor, task_id)
        current = await self.get(actor, task_id)
        if current.status in ACTIVE_STATUSES:
            raise ConflictError("the task is not running on this server; try again in a moment")
        raise ConflictError(f"the task already ended ({current.status})")

    async def events(self, actor: UserRecord, task_id: UUID, *, after: int, limit: int, before: int | None = None,
                     latest: bool = False) -> list[TaskEvent]:
        """Events in (after, before), oldest first: the first `limit` of them, or with `latest` the last."""
        await self.get(actor, task_id)
        return await self._bus.history(task_id, after=after, limit=limit, before=before, latest=latest)

    async def follow(self, actor: UserRecord, task_id: UUID, after: int) -> AsyncIterator[WireEvent]:
        """Replay then live; ends once the task has ended and every event was delivered."""
        await self.get(actor, task_id)

        async def settled(last_seq: int) -> bool:
            task = await self._tasks.get(task_id)
            return task is None or (task.status in TERMINAL_STATUSES and task.last_seq <= last_seq)

        return self._bus.follow(task_id, after, settled)

    async def diff(self, actor: UserRecord, task_id: UUID) -> str:
        task = await self.get(actor, task_id)
        if not (task.base_commit and task.head_commit):
            return ""
        return await self._review(self._store.diff(task.workspace_id, task.base_commit, task.head_commit))

    async def files(self, actor: UserRecord, task_id: UUID) -> list[FileChange]:
        task = await self.get(actor, task_id)
        if not (task.base_commit and task.head_commit):
            return []
        return await self._review(self._store.files(task.workspace_id, task.base_commit, task.head_commit))

    async def patch_series(self, actor: UserRecord, task_id: UUID) -> str:
        """The task's commits as an mbox patch series (`git format-patch --stdout base..head`); '' if none."""
        task = await self.get(actor, task_id)
        if not (task.base_commit and task.head_commit):
            return ""
        return await self._review(self._store.patch_series(task.workspace_id, task.base_commit, task.head_commit,
                                                           f"aicode {__version__}"))

    @staticmethod
    async def _review(reading: Awaitable[T]) -> T:
        try:
            return await reading
        except (CheckoutError, PatchSeriesError, KeyError, ValueError) as exc:
            raise ConflictError(f"the task's commits cannot be read from the workspace's store: {exc}") from None
