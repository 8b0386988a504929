"""A turn's working copy: made ready before the agent runs (the workspace's mirror here, the first
checkout, or the task's state restored from another node) and committed after it, with the task's
state then stored centrally."""

from __future__ import annotations

from typing import Any, Protocol

from aicode.errors import AicodeError
from aicode.git.store import GitStore, Snapshot
from aicode.tasks.models import TaskRecord
from aicode.tasks.portable import PortableState, StateUnavailable
from aicode.tasks.repo import TaskRepo
from aicode.tasks.turn_plan import COMMITTER, TurnFailure, commit_title
from aicode.workspaces.models import WorkspaceRecord

__all__ = ["LocalMirrors", "WorkingCopies", "commit_events"]

_NOT_RESTORED = "this task's state could not be restored on this node"
_SKIPPED_SHOWN = 20

Event = tuple[str, dict[str, Any]]


class LocalMirrors(Protocol):
    async def ensure_local(self, workspace: WorkspaceRecord) -> None:
        """The workspace's mirror on this node, up to date with its last sync on any node."""


def commit_events(task: TaskRecord, snapshot: Snapshot | None, partial: bool) -> list[Event]:
    """What the task's events say of a turn's commit: the commit, files left out, or no change."""
    events: list[Event] = []
    if snapshot is not None and snapshot.skipped:
        shown = "; ".join(f"{path}: {why}" for path, why in snapshot.skipped[:_SKIPPED_SHOWN])
        more = len(snapshot.skipped) - _SKIPPED_SHOWN
        events.append(("notice", {"level": "warning", "code": "files_not_committed",
                                  "message": f"not committed: {shown}" + (f" (and {more} more)" if more > 0 else "")}))
    commit = snapshot.commit if snapshot is not None else None
    if commit is None:
        events.append(("notice", {"level": "info", "code": "no_changes",
                                  "message": "the turn changed no files: no commit was made"}))
    else:
        events.append(("git.commit", {"commit": commit.commit, "branch": task.branch,
                                      "files_changed": commit.files_changed, "additions": commit.additions,
                                      "deletions": commit.deletions, "partial": partial}))
    return events


class WorkingCopies:
    def __init__(self, tasks: TaskRepo, store: GitStore, mirrors: LocalMirrors, state: PortableState, *,
                 site_url: str | None = None) -> None:
        self._site_url = site_url.rstrip("/") if site_url else None  # for the `Task:` trailer's link
        self._tasks = tasks
        self._store = store
        self._mirrors = mirrors
        self._state = state

    async def ready(self, task: TaskRecord, workspace: WorkspaceRecord) -> None:
        """Before the turn: the workspace's mirror on this node and, for a turn after the first, the
        working copy and session as the last turn left them (restored when another node ran it)."""
        try:
            await self._mirrors.ensure_local(workspace)
        except AicodeError as exc:
            raise TurnFailure(exc.detail) from None
        if task.base_commit is not None:
            try:
                await self._state.ensure_working_copy(task)
            except StateUnavailable as exc:
                raise TurnFailure(f"{_NOT_RESTORED}: {exc}") from None

    async def base(self, task: TaskRecord) -> str:
        """The base commit; on the first turn the branch and working copy are made from the base branch."""
        if task.base_commit is not None:
            return task.base_commit
        base = await self._store.make_checkout(task.workspace_id, task.id, task.base_branch, task.branch)
        await self._tasks.set_base_commit(task.id, base)
        return base

    async def commit(self, task: TaskRecord, parent: str, *, partial: bool, author: tuple[str, str]) -> Snapshot:
        """Commit the working copy on the task branch: author the turn's requester, committer aicode."""
        prompt = (task.pending_prompt or task.prompt).strip()
        trailers = f"aicode-task: {task.id}\n"
        if self._site_url:
            trailers += f"Task: {self._site_url}/tasks/{task.id}\n"
        message = f"{'[partial] ' if partial else ''}{commit_title(prompt)}\n\n{prompt}\n\n{trailers}"
        return await self._store.snapshot(task.workspace_id, task.id, parent, message, author, COMMITTER)

    async def store_state(self, task: TaskRecord, since: str, snapshot: Snapshot | None) -> list[Event]:
        """Store the turn's commits and the agent's session centrally; a warning event if that failed."""
        head = snapshot.commit.commit if snapshot is not None and snapshot.commit is not None else None
        problem = await self._state.save(task, since, head)
        if problem is None:
            return []
        return [("notice", {"level": "warning", "code": "state_not_stored", "message": problem})]
