"""A task's state, portable between nodes: saved centrally after each turn, restored on demand.

After every turn the commits it added (`aicode.git.transfer`) and the agent's session files
(`aicode.tasks.session_state`) go to PostgreSQL. A node about to run a follow-up, or to answer a
diff, files or patch, first checks its own store: when the task's ref there is at the task's head
(it ran the last turn, or restored it before), it works from that cache; otherwise it restores the
commits into its mirror and, for a turn, rebuilds the working copy at the head and the agent's
session, so the agent resumes the same conversation.
"""

from __future__ import annotations

import asyncio

import structlog

from aicode.git.store import GitStore
from aicode.git.transfer import TransferError
from aicode.storage.layout import DataLayout
from aicode.tasks.models import TaskRecord
from aicode.tasks.session_state import SessionStateError, pack_session, unpack_session
from aicode.tasks.state_repo import TaskStateRepo

__all__ = ["PortableState", "StateUnavailable"]

log = structlog.get_logger(__name__)

# Beyond these a turn's state stays on its node (a notice says so): the database is no file store.
MAX_TURN_OBJECTS_BYTES = 256 * 1024 * 1024
MAX_SESSION_BYTES = 64 * 1024 * 1024


class StateUnavailable(Exception):
    """The task's state is neither here nor (complete) in the database."""


class PortableState:
    def __init__(self, repo: TaskStateRepo, store: GitStore, layout: DataLayout) -> None:
        self._repo = repo
        self._store = store
        self._layout = layout

    async def save(self, task: TaskRecord, since: str, head: str | None) -> str | None:
        """Store what the turn left: the commits from `since` to `head`, and the session. Returns a
        warning for the task's events when some of it could not be stored (the task then continues
        only on this node)."""
        problems: list[str] = []
        if head is not None and head != since:
            try:
                objects = await self._store.export_objects(task.workspace_id, since, head, MAX_TURN_OBJECTS_BYTES)
                await self._repo.add_objects(task.id, since, head, objects)
            except TransferError as exc:
                problems.append(str(exc))
        try:
            archive = await asyncio.to_thread(pack_session, self._layout.agent_config(task.id), self._layout.ids,
                                              MAX_SESSION_BYTES)
            await self._repo.save_session(task.id, archive)
        except (SessionStateError, OSError) as exc:
            problems.append(f"the agent's session was not stored ({exc})")
        if not problems:
            return None
        log.warning("task.state_not_stored", task_id=str(task.id), problems=problems)
        return "; ".join(problems) + ": follow-ups of this task can only run on this node"

    async def save_commits(self, task: TaskRecord, since: str, head: str) -> None:
        """Store commits made outside a turn (a rebase) so that every node can continue from them;
        TransferError beyond the cap."""
        objects = await self._store.export_objects(task.workspace_id, since, head, MAX_TURN_OBJECTS_BYTES)
        await self._repo.add_objects(task.id, since, head, objects)

    async def ensure_commits(self, task: TaskRecord) -> None:
        """The task's commits in this node's mirror, restored from the database if they are not."""
        if task.head_commit is None or await self._store.has_task_head(task.workspace_id, task.id,
                                                                       task.head_commit):
            return
        packs = await self._repo.objects(task.id)
        try:
            await self._store.import_objects(task.workspace_id, task.id, packs, task.head_commit)
        except TransferError as exc:
            raise StateUnavailable(str(exc)) from None

    async def ensure_working_copy(self, task: TaskRecord) -> None:
        """For a turn after the first: the working copy and session as the last turn left them. Kept when
        this node ran that turn; rebuilt from the database otherwise."""
        head = task.head_commit or task.base_commit
        assert head is not None
        if (self._layout.checkout(task.id).is_dir()
                and await self._store.has_task_head(task.workspace_id, task.id, head)):
            return
        await self.ensure_commits(task)
        archive = await self._repo.session(task.id)
        await asyncio.to_thread(self._layout.prepare_task, task.id)
        await self._store.checkout_task_head(task.workspace_id, task.id, task.branch, head)
        if archive is not None:
            try:
                await asyncio.to_thread(unpack_session, archive, self._layout.agent_config(task.id),
                                        self._layout.ids, MAX_SESSION_BYTES)
            except SessionStateError as exc:
                raise StateUnavailable(str(exc)) from None
        log.info("task.state_restored", task_id=str(task.id), head=head, session=archive is not None)
