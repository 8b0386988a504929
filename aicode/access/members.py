"""Who belongs to a workspace, with which role: listed by any member, changed by its owners."""

from __future__ import annotations

from uuid import UUID

import structlog

from aicode.access.changes import AccessChanges
from aicode.access.policy import Action, Role
from aicode.access.repo import Member, MemberRepo
from aicode.access.service import AccessService
from aicode.audit.service import AuditLog
from aicode.auth.models import UserRecord
from aicode.auth.repo import UserRepo
from aicode.errors import NotFoundError

__all__ = ["MemberService"]

log = structlog.get_logger(__name__)


class MemberService:
    def __init__(self, access: AccessService, members: MemberRepo, users: UserRepo, changes: AccessChanges,
                 audit: AuditLog) -> None:
        self._access = access
        self._members = members
        self._users = users
        self._changes = changes
        self._audit = audit

    async def list(self, actor: UserRecord, workspace_id: UUID) -> list[Member]:
        await self._access.workspace(actor, workspace_id, Action.VIEW)
        return await self._members.list(workspace_id)

    async def put(self, actor: UserRecord, workspace_id: UUID, username: str, role: Role) -> Member:
        """Give `username` the role (adding them if they are not a member); owners and admins."""
        await self._access.workspace(actor, workspace_id, Action.MANAGE)
        user = await self._user(username)
        member = await self._members.put(workspace_id, user.id, role)
        self._changes.publish(user.id)
        await self._audit.record(actor, "member.set", ("workspace", workspace_id), member=user.username,
                                 role=role.value)
        log.info("workspace.member_set", workspace_id=str(workspace_id), member=user.username, role=role.value,
                 by=actor.username)
        return member

    async def remove(self, actor: UserRecord, workspace_id: UUID, username: str) -> None:
        """Take `username` out of the workspace: owners and admins may remove anyone, a member themselves."""
        user = await self._user(username)
        action = Action.VIEW if user.id == actor.id else Action.MANAGE
        await self._access.workspace(actor, workspace_id, action)
        if not await self._members.remove(workspace_id, user.id):
            raise NotFoundError(f"{user.username} is not a member of this workspace")
        self._changes.publish(user.id)
        await self._audit.record(actor, "member.remove", ("workspace", workspace_id), member=user.username)
        log.info("workspace.member_removed", workspace_id=str(workspace_id), member=user.username,
                 by=actor.username)

    async def _user(self, username: str) -> UserRecord:
        user = await self._users.get_by_username(username)
        if user is None:
            raise NotFoundError(f"no user named {username!r}")
        return user
