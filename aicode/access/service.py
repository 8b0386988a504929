"""Applies the access rule (`policy.permits`) to a workspace or a task for the person asking.

Every entry point (API, streams, pages, and through them the CLI) goes through here, so a
workspace someone has no role in answers 404 worded as for an id that does not exist, and a
member whose role does not allow an action gets a 403 saying which role would.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from aicode.access.policy import Action, Role, permits
from aicode.access.repo import MemberRepo
from aicode.auth.models import UserRecord
from aicode.auth.repo import UserRepo
from aicode.errors import ForbiddenError, NotFoundError
from aicode.workspaces.models import WorkspaceRecord
from aicode.workspaces.repo import WorkspaceRepo

__all__ = ["AccessService", "WorkspaceAccess"]

_NEEDS = {
    Action.RUN: ("run tasks", "an editor or owner"),
    Action.SYNC: ("sync the workspace", "an editor or owner"),
    Action.CANCEL_OWN: ("cancel tasks", "an editor or owner"),
    Action.CANCEL_ANY: ("cancel a task someone else started", "an owner"),
    Action.PUBLISH: ("push tasks, open their pull requests or rebase them", "an editor or owner"),
    Action.MANAGE: ("change the workspace, its members or its credential", "an owner"),
    Action.NOTIFY: ("add, remove or test the workspace's notification webhooks", "an owner"),
    Action.DELETE: ("delete the workspace", "an owner"),
}


@dataclass(frozen=True, slots=True)
class WorkspaceAccess:
    """The workspace, and the asker's role in it (None: an admin who is not a member)."""

    workspace: WorkspaceRecord
    role: Role | None


class AccessService:
    def __init__(self, workspaces: WorkspaceRepo, members: MemberRepo, users: UserRepo) -> None:
        self._workspaces = workspaces
        self._members = members
        self._users = users

    async def workspace(self, actor: UserRecord, workspace_id: UUID, action: Action = Action.VIEW) -> WorkspaceAccess:
        """The workspace if `actor` may do `action` there: 404 if they may not see it, 403 if only that."""
        workspace = await self._workspaces.get(workspace_id)
        role = await self._members.role(workspace_id, actor.id) if workspace is not None else None
        if workspace is None or not permits(role, Action.VIEW, admin=actor.is_admin):
            raise NotFoundError(f"no workspace with id {workspace_id}")
        self._check(actor, role, action)
        return WorkspaceAccess(workspace, role)

    async def task(self, actor: UserRecord, task_id: UUID, workspace_id: UUID | None, started_by: UUID | None,
                   action: Action = Action.VIEW) -> WorkspaceAccess:
        """Access to a task of `workspace_id` (None: no such task) started by `started_by`: 404 unless the
        actor may see its workspace. `Action.CANCEL_ANY` becomes CANCEL_OWN for the task's own author."""
        if workspace_id is None:
            raise NotFoundError(f"no task with id {task_id}")
        try:
            access = await self.workspace(actor, workspace_id)
        except NotFoundError:
            raise NotFoundError(f"no task with id {task_id}") from None
        if action == Action.CANCEL_ANY and started_by == actor.id:
            action = Action.CANCEL_OWN
        self._check(actor, access.role, action)
        return access

    async def still_signed_in(self, actor: UserRecord) -> bool:
        """Whether `actor` is still enabled, in the session they signed in with."""
        return await self._current(actor) is not None

    async def still_sees(self, actor: UserRecord, workspace_id: UUID) -> bool:
        """Whether `actor`, as they are NOW (not disabled, same session, a role that lets them see the
        workspace), may go on seeing it: asked by open streams when the actor's access changed."""
        current = await self._current(actor)
        if current is None:
            return False
        try:
            await self.workspace(current, workspace_id)
        except NotFoundError:
            return False
        return True

    async def _current(self, actor: UserRecord) -> UserRecord | None:
        """`actor` as they are now; None once disabled, deleted or signed out everywhere."""
        current = await self._users.get(actor.id)
        if current is None or current.disabled or current.session_version != actor.session_version:
            return None
        return current

    async def role(self, actor: UserRecord, workspace_id: UUID) -> Role | None:
        return await self._members.role(workspace_id, actor.id)

    async def roles(self, actor: UserRecord) -> dict[UUID, Role]:
        """The actor's role in each workspace they belong to."""
        return await self._members.roles(actor.id)

    @staticmethod
    def _check(actor: UserRecord, role: Role | None, action: Action) -> None:
        if permits(role, action, admin=actor.is_admin):
            return
        what, who = _NEEDS.get(action, (action.value, "an owner"))
        raise ForbiddenError(f"you are {role.value if role else 'not a member'} in this workspace: "
                             f"only {who} may {what}")
