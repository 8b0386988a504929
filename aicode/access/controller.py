"""`/api/workspaces/{id}/members`: a workspace's members and their roles."""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

import msgspec
from litestar import Controller, Request, delete, get, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_204_NO_CONTENT

from aicode.access.members import MemberService
from aicode.access.policy import Role
from aicode.access.repo import Member
from aicode.auth.models import UserRecord
from aicode.auth.schemas import Username

__all__ = ["MemberController"]


class MemberOut(msgspec.Struct):
    user_id: UUID
    username: str
    role: str


class MemberPut(msgspec.Struct, forbid_unknown_fields=True):
    role: Literal["owner", "editor", "viewer"]


def member_out(member: Member) -> MemberOut:
    return MemberOut(user_id=member.user_id, username=member.username, role=member.role.value)


class MemberController(Controller):
    path = "/api/workspaces/{workspace_id:uuid}/members"
    tags = ["workspaces"]

    @get("/")
    async def list_members(
        self, workspace_id: FromPath[UUID], request: Request[UserRecord, Any, Any],
        member_service: NamedDependency[MemberService],
    ) -> list[MemberOut]:
        """The workspace's members: owners first, then editors, then viewers (any member may look)."""
        return [member_out(m) for m in await member_service.list(request.user, workspace_id)]

    @put("/{username:str}")
    async def put_member(
        self, workspace_id: FromPath[UUID], username: FromPath[Username], data: JSONBody[MemberPut],
        request: Request[UserRecord, Any, Any], member_service: NamedDependency[MemberService],
    ) -> MemberOut:
        """Add a user with a role, or change a member's role (owners). 409 if it would leave no owner."""
        return member_out(await member_service.put(request.user, workspace_id, username, Role(data.role)))

    @delete("/{username:str}", status_code=HTTP_204_NO_CONTENT)
    async def remove_member(
        self, workspace_id: FromPath[UUID], username: FromPath[Username], request: Request[UserRecord, Any, Any],
        member_service: NamedDependency[MemberService],
    ) -> None:
        """Remove a member (owners; anyone may leave). 409 for the last owner."""
        await member_service.remove(request.user, workspace_id, username)
