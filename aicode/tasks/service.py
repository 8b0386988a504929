"""Submitting, reading, following up, cancelling and reviewing tasks, with who-may-see-what checks."""

from __future__ import annotations

import builtins
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar
from uuid import UUID

import structlog

from aicode import __version__
from aicode.access.changes import AccessChanges
from aicode.access.policy import Action, listing_scope
from aicode.access.service import AccessService
from aicode.audit.service import AuditLog
from aicode.auth.models import UserRecord
from aicode.errors import ConflictError, InvalidInputError, NotFoundError, TooManyError
from aicode.git.checkout import CheckoutError, FileChange
from aicode.git.patches import PatchSeriesError
from aicode.git.store import GitStore
from aicode.metrics.instruments import STREAM_CLIENTS
from aicode.tasks.events import TaskEventBus, WireEvent
from aicode.tasks.models import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    NewTask,
    TaskChange,
    TaskEvent,
    TaskRecord,
    TaskStatus,
)
from aicode.tasks.portable import PortableState, StateUnavailable
from aicode.tasks.queue_repo import TaskQueueRepo
from aicode.tasks.repo import TaskRepo
from aicode.tasks.retention import DiskFloor
from aicode.tasks.schemas import TaskCreate
from aicode.tasks.session_repo import SessionRepo
from aicode.tasks.supervisor import TaskSupervisor
from aicode.tasks.turns import TURN_EVENT_TYPES, TurnCommit, turn_commits
from aicode.tasks.warm_start import WarmStart
from aicode.workspaces.models import WorkspaceStatus
from aicode.workspaces.service import WorkspaceService

__all__ = ["TaskService"]

log = structlog.get_logger(__name__)

T = TypeVar("T")


async def _counted(stream: AsyncIterator[WireEvent]) -> AsyncIterator[WireEvent]:
    """`stream`, counted in aicode_stream_clients while a client reads it."""
    STREAM_CLIENTS.inc()
    try:
        async for event in stream:
            yield event
    finally:
        STREAM_CLIENTS.dec()


class TaskService:
    def __init__(
        self, tasks: TaskRepo, queue: TaskQueueRepo, bus: TaskEventBus, workspaces: WorkspaceService,
        supervisor: TaskSupervisor, store: GitStore, state: PortableState, access: AccessService,
        changes: AccessChanges, audit: AuditLog, disk: DiskFloor, sessions: SessionRepo, warm: WarmStart, *,
        default_timeout_s: int,
        max_timeout_s: int = 6 * 3600, max_queued_per_user: int = 50,
    ) -> None:
        self._sessions = sessions
        self._warm = warm
        self._tasks = tasks
        self._queue = queue
        self._bus = bus
        self._workspaces = workspaces
        self._supervisor = supervisor
        self._store = store
        self._state = state
        self._access = access
        self._changes = changes
        self._audit = audit
        self._disk = disk
        self._default_timeout_s = default_timeout_s
        self._max_timeout_s = max_timeout_s
        self._max_queued = max_queued_per_user

    async def submit(self, actor: UserRecord, workspace_id: UUID, request: TaskCreate,
                     origin: dict[str, Any] | None = None, *, kind: str = "task") -> TaskRecord:
        """Store the task as queued (with its first event); the first node with a free slot claims it.
        `origin`: the forge comment that asked for it, answered when the task ends. `kind` "session": a
        live session, whose prompt may be empty (it then waits for its first)."""
        workspace = await self._workspaces.get(actor, workspace_id, Action.RUN)
        if (request.timeout_s or 0) > self._max_timeout_s:
            raise InvalidInputError(f"timeout_s may be at most {self._max_timeout_s} on this server "
                                    "(AICODE_MAX_TASK_TIMEOUT_S)")
        await self._check_queue_room(actor)
        await self._disk.check()
        if workspace.status != WorkspaceStatus.READY:
            raise ConflictError(f"the workspace is {workspace.status}, not ready"
                                + (f": {workspace.error}" if workspace.error else ""))
        base_branch = request.base_branch or workspace.default_branch
        if not base_branch:
            raise InvalidInputError("the workspace has no default branch: give base_branch")
        await self._workspaces.ensure_local(workspace)
        if not await self._store.branch_exists(workspace.id, base_branch):
            raise InvalidInputError(f"branch {base_branch!r} does not exist in the workspace's repository")
        # The id a warm container was made for, when one is ready: the first turn then finds it running.
        task_id = await self._warm.reserve(workspace, request.agent) or uuid.uuid4()
        async with self._bus.batch(task_id) as batch:
            task = await self._tasks.insert(NewTask(
                id=task_id, workspace_id=workspace.id, user_id=actor.id, agent=request.agent, prompt=request.prompt,
                model=request.model, max_turns=request.max_turns,
                timeout_s=request.timeout_s or self._default_timeout_s, base_branch=base_branch,
                branch=f"aicode/{task_id}", max_cost_usd=request.max_cost_usd, origin=origin, kind=kind,
            ), batch.conn)
            await batch.add([("task.status", {"status": TaskStatus.QUEUED})])
            await self._queue.notify_queued(batch.conn)
        self._supervisor.wake()
        log.info("task.submitted", task_id=str(task.id), workspace_id=str(workspace.id))
        await self._audit.record(actor, "task.submit", ("task", task.id), workspace_id=workspace.id)
        return task

    async def get(self, actor: UserRecord, task_id: UUID, action: Action = Action.VIEW) -> TaskRecord:
        """The task if `actor` may do `action` on it (see `aicode.access`); 404 if they may not see it."""
        task = await self._tasks.get(task_id)
        await self._access.task(actor, task_id, task.workspace_id if task else None, task.user_id if task else None,
                                action)
        assert task is not None
        return task

    async def list(self, actor: UserRecord, *, workspace_id: UUID | None, status: str | None, limit: int
                   ) -> list[TaskRecord]:
        return await self._tasks.list_visible(listing_scope(actor), workspace_id=workspace_id, status=status,
                                              limit=limit)

    async def follow_up(self, actor: UserRecord, task_id: UUID, prompt: str, *, agent: str | None = None
                        ) -> TaskRecord:
        """Queue another turn on the same session and branch; it runs with `actor`'s credential."""
        current = await self.get(actor, task_id, Action.RUN)
        if agent is not None and agent != current.agent:
            raise ConflictError(f"this task runs {current.agent}, and a follow-up continues that agent's session: "
                                f"start a new task to work with {agent}")
        if current.kind == "session" and current.status in ACTIVE_STATUSES:
            return await self._to_live_session(actor, current, prompt)
        await self._check_queue_room(actor)
        await self._disk.check()
        async with self._bus.batch(task_id) as batch:
            task = await self._tasks.transition(
                task_id, TaskStatus.QUEUED, allowed_from=tuple(TERMINAL_STATUSES), conn=batch.conn,
                change=TaskChange(set_pending_prompt=True, pending_prompt=prompt, reopened=True, turn_user_id=actor.id))
            if task is None:
                raise ConflictError("the task is still queued or running: wait for the turn to end, or cancel it")
            await batch.add([("notice", {"level": "info", "code": "follow_up", "message": prompt,
                                         "by": actor.username}),
                             ("task.status", {"status": TaskStatus.QUEUED})])
            await self._queue.notify_queued(batch.conn)
        self._supervisor.wake()
        await self._audit.record(actor, "task.follow_up", ("task", task_id), workspace_id=task.workspace_id)
        return task

    async def _to_live_session(self, actor: UserRecord, task: TaskRecord, prompt: str) -> TaskRecord:
        """A prompt for a session that is live (or about to be): queued in order for its agent, which gets
        it as soon as the turn before it ended. It runs with `actor`'s key, as a follow-up does."""
        if await self._sessions.waiting(task.id) >= self._max_queued:
            raise TooManyError(f"{self._max_queued} prompts already wait for this session: let it catch up",
                               retry_after_s=10)
        async with self._bus.batch(task.id) as batch:
            await self._sessions.add_prompt(batch.conn, task.id, actor.id, prompt)
            await batch.add([("notice", {"level": "info", "code": "follow_up", "message": prompt,
                                         "by": actor.username})])
        self._supervisor.signal_session("prompt", task.id)
        await self._audit.record(actor, "task.follow_up", ("task", task.id), workspace_id=task.workspace_id)
        return task

    async def interrupt(self, actor: UserRecord, task_id: UUID) -> TaskRecord:
        """Stop the running turn. A live session commits the turn's work as partial and waits for the next
        prompt; any other task stops as a cancel does."""
        task = await self.get(actor, task_id, Action.CANCEL_ANY)
        if task.kind != "session":
            return await self.cancel(actor, task_id)
        if task.status != TaskStatus.RUNNING:
            raise ConflictError(f"no turn is running: the session is {task.status}")
        if not self._supervisor.signal_session("interrupt", task_id):
            await self._sessions.signal("interrupt", task_id)
        log.info("session.interrupt_requested", task_id=str(task_id), by=actor.username)
        return task

    async def terminate(self, actor: UserRecord, task_id: UUID) -> TaskRecord:
        """End a live session the normal way: the running turn (if any) is interrupted and committed, the
        process stopped and the container removed; the state stays, so a follow-up resumes it."""
        task = await self.get(actor, task_id, Action.CANCEL_ANY)
        if task.kind != "session":
            raise ConflictError("this task is not a live session: cancel it instead")
        if task.status == TaskStatus.QUEUED:
            return await self.cancel(actor, task_id)
        if task.status != TaskStatus.RUNNING:
            return task  # already ended: nothing to do
        if not self._supervisor.signal_session("terminate", task_id):
            await self._sessions.signal("terminate", task_id)
        await self._audit.record(actor, "session.terminate", ("task", task_id), workspace_id=task.workspace_id)
        return task

    async def _check_queue_room(self, actor: UserRecord) -> None:
        queued = await self._tasks.count_queued_by(actor.id)
        if queued >= self._max_queued:
            raise TooManyError(f"you already have {queued} tasks waiting in the queue, the most this server allows "
                               "one person (AICODE_MAX_QUEUED_PER_USER): wait for some to start, or cancel some",
                               retry_after_s=30)

    async def cancel(self, actor: UserRecord, task_id: UUID) -> TaskRecord:
        """Editors cancel the tasks they started, owners any (`Action.CANCEL_ANY` narrows to own for authors)."""
        task = await self.get(actor, task_id, Action.CANCEL_ANY)
        await self._audit.record(actor, "task.cancel", ("task", task_id), workspace_id=task.workspace_id,
                                 status=task.status)
        if task.status in ACTIVE_STATUSES:
            # Who stopped it, for the feed ("Cancelled by …"); the status event follows once the turn ended.
            await self._bus.emit(task_id, [("notice", {"level": "info", "code": "cancel_requested",
                                                       "by": actor.username,
                                                       "message": f"cancelled by {actor.username}"})])
        if task.status == TaskStatus.QUEUED:
            async with self._bus.batch(task_id) as batch:
                cancelled = await self._tasks.transition(
                    task_id, TaskStatus.CANCELLED, allowed_from=(TaskStatus.QUEUED,), conn=batch.conn,
                    change=TaskChange(finished=True, set_pending_prompt=True))
                if cancelled is not None:
                    await batch.add([("task.status", {"status": TaskStatus.CANCELLED})])
            if cancelled is not None:
                return cancelled
        current = await self.get(actor, task_id)
        if current.status == TaskStatus.RUNNING:
            # Reaches the node running the turn, this one or another, which stops it within seconds.
            await self._supervisor.request_cancel(task_id)
            log.info("task.cancel_requested", task_id=str(task_id), by=actor.username, node=current.node)
            return current
        if current.status in ACTIVE_STATUSES:
            raise ConflictError("the task was just claimed by a node; try again in a moment")
        raise ConflictError(f"the task already ended ({current.status})")

    async def events(self, actor: UserRecord, task_id: UUID, *, after: int, limit: int, before: int | None = None,
                     latest: bool = False) -> builtins.list[TaskEvent]:
        """Events in (after, before), oldest first: the first `limit` of them, or with `latest` the last."""
        await self.get(actor, task_id)
        return await self._bus.history(task_id, after=after, limit=limit, before=before, latest=latest)

    async def list_changes(self, actor: UserRecord) -> AsyncIterator[tuple[TaskRecord, str] | None]:
        """Each task `actor` may see whose status changes from now on (a new task is one), with that status, for
        lists that update live; first None once listening; ends once `actor` is disabled or signed out."""
        async for change in self._bus.list_changes():
            if change is None:
                yield None
                continue
            task_id, status = change
            task = await self._tasks.get(task_id)
            if task is None:
                continue
            if not await self._access.still_sees(actor, task.workspace_id):
                if not await self._access.still_signed_in(actor):
                    return
                continue
            yield task, status

    async def follow(self, actor: UserRecord, task_id: UUID, after: int) -> AsyncIterator[WireEvent]:
        """Replay then live; ends once the task has ended and every event was delivered, or once the
        reader may no longer see it (disabled, signed out everywhere, removed from the workspace)."""
        task = await self.get(actor, task_id)

        async def settled(last_seq: int) -> bool:
            current = await self._tasks.get(task_id)
            return current is None or (current.status in TERMINAL_STATUSES and current.last_seq <= last_seq)

        async def still_allowed() -> bool:
            return await self._access.still_sees(actor, task.workspace_id)

        return _counted(self._changes.guard(actor.id, self._bus.follow(task_id, after, settled), still_allowed))

    async def diff(self, actor: UserRecord, task_id: UUID, *, commit: str | None = None, turn: int | None = None
                   ) -> str:
        """The task's changes as a patch, base to head; with `commit` or `turn` only what that turn changed."""
        task = await self.get(actor, task_id)
        base, head = await self._range(task, commit, turn)
        if not (base and head):
            return ""
        return await self._review(actor, task, lambda: self._store.diff(task.workspace_id, base, head))

    async def files(self, actor: UserRecord, task_id: UUID, *, commit: str | None = None, turn: int | None = None
                    ) -> builtins.list[FileChange]:
        """The files the task changed, base to head; with `commit` or `turn` those that turn changed."""
        task = await self.get(actor, task_id)
        base, head = await self._range(task, commit, turn)
        if not (base and head):
            return []
        return await self._review(actor, task, lambda: self._store.files(task.workspace_id, base, head))

    async def turns(self, actor: UserRecord, task_id: UUID) -> builtins.list[TurnCommit]:
        """The task's turns that committed, oldest first (those since its last rebase)."""
        task = await self.get(actor, task_id)
        return turn_commits(task.base_commit, await self._bus.of_types(task_id, TURN_EVENT_TYPES))

    async def _range(self, task: TaskRecord, commit: str | None, turn: int | None) -> tuple[str | None, str | None]:
        """Base and head of the changes asked for: the whole task, or one turn of its own (404 otherwise,
        so no other object of the workspace's store is ever diffed)."""
        if commit is None and turn is None:
            return task.base_commit, task.head_commit
        turns = turn_commits(task.base_commit, await self._bus.of_types(task.id, TURN_EVENT_TYPES))
        found = next((t for t in turns if commit in (None, t.commit) and turn in (None, t.number)), None)
        if found is None:
            what = f"commit {commit}" if commit is not None else f"turn {turn}"
            raise NotFoundError(f"the task has no {what} among the commits of its turns "
                                f"({len(turns)} turns committed so far)")
        return found.parent, found.commit

    async def patch_series(self, actor: UserRecord, task_id: UUID) -> str:
        """The task's commits as an mbox patch series (`git format-patch --stdout base..head`); '' if none."""
        task = await self.get(actor, task_id)
        if not (task.base_commit and task.head_commit):
            return ""
        base, head = task.base_commit, task.head_commit
        signature = f"aicode {__version__}"
        return await self._review(actor, task,
                                  lambda: self._store.patch_series(task.workspace_id, base, head, signature))

    async def _review(self, actor: UserRecord, task: TaskRecord, read: Callable[[], Awaitable[T]]) -> T:
        """`read()` from this node's store, with the task's commits restored there first when another
        node made them."""
        try:
            await self._workspaces.ensure_local(await self._workspaces.get(actor, task.workspace_id))
            await self._state.ensure_commits(task)
            return await read()
        except StateUnavailable as exc:
            raise ConflictError(f"the task's commits cannot be restored on this node: {exc}") from None
        except (CheckoutError, PatchSeriesError, KeyError, ValueError) as exc:
            raise ConflictError(f"the task's commits cannot be read from the workspace's store: {exc}") from None
