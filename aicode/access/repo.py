"""SQL for workspace members, and the one SQL form of "may see this workspace" that lists use."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from aicode.access.policy import Role
from aicode.db.pool import Database
from aicode.errors import ConflictError

__all__ = ["Member", "MemberRepo", "visible_to"]


def visible_to(workspace_column: str, user_param: str) -> str:
    """A WHERE condition: the user (a uuid parameter; NULL for an admin) has a role in the workspace."""
    return (f"({user_param}::uuid IS NULL OR EXISTS (SELECT 1 FROM workspace_members vis "
            f"WHERE vis.workspace_id = {workspace_column} AND vis.user_id = {user_param}))")


@dataclass(frozen=True, slots=True)
class Member:
    user_id: UUID
    username: str
    role: Role
    created_at: datetime


def _member(row: asyncpg.Record) -> Member:
    return Member(user_id=row["user_id"], username=row["username"], role=Role(row["role"]),
                  created_at=row["created_at"])


class MemberRepo:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def role(self, workspace_id: UUID, user_id: UUID) -> Role | None:
        value = await self._db.pool.fetchval(
            "SELECT role FROM workspace_members WHERE workspace_id = $1 AND user_id = $2", workspace_id, user_id)
        return None if value is None else Role(value)

    async def roles(self, user_id: UUID) -> dict[UUID, Role]:
        """The user's role in each workspace they belong to."""
        rows = await self._db.pool.fetch(
            "SELECT workspace_id, role FROM workspace_members WHERE user_id = $1", user_id)
        return {row["workspace_id"]: Role(row["role"]) for row in rows}

    async def list(self, workspace_id: UUID) -> list[Member]:
        rows = await self._db.pool.fetch(
            """SELECT m.user_id, u.username, m.role, m.created_at FROM workspace_members m
               JOIN users u ON u.id = m.user_id WHERE m.workspace_id = $1
               ORDER BY CASE m.role WHEN 'owner' THEN 0 WHEN 'editor' THEN 1 ELSE 2 END, lower(u.username)""",
            workspace_id)
        return [_member(row) for row in rows]

    async def add(self, conn: asyncpg.Connection, workspace_id: UUID, user_id: UUID, role: Role) -> None:
        await conn.execute(
            "INSERT INTO workspace_members (workspace_id, user_id, role) VALUES ($1, $2, $3)",
            workspace_id, user_id, role.value)

    async def put(self, workspace_id: UUID, user_id: UUID, role: Role) -> Member:
        """Add the member or change their role; refuses to leave the workspace without an owner."""
        async with self._db.transaction() as conn:
            await self._lock_members(conn, workspace_id)
            if role != Role.OWNER:
                await self._keep_an_owner(conn, workspace_id, user_id)
            row = await conn.fetchrow(
                """INSERT INTO workspace_members (workspace_id, user_id, role) VALUES ($1, $2, $3)
                   ON CONFLICT (workspace_id, user_id) DO UPDATE SET role = EXCLUDED.role, updated_at = now()
                   RETURNING user_id, role, created_at,
                             (SELECT username FROM users WHERE id = $2) AS username""",
                workspace_id, user_id, role.value)
        assert row is not None
        return _member(row)

    async def remove(self, workspace_id: UUID, user_id: UUID) -> bool:
        """Remove the member (False if they were none); refuses to remove the last owner."""
        async with self._db.transaction() as conn:
            await self._lock_members(conn, workspace_id)
            await self._keep_an_owner(conn, workspace_id, user_id)
            status: str = await conn.execute(
                "DELETE FROM workspace_members WHERE workspace_id = $1 AND user_id = $2", workspace_id, user_id)
        return status.endswith(" 1")

    @staticmethod
    async def _lock_members(conn: asyncpg.Connection, workspace_id: UUID) -> None:
        # Serialises membership changes of one workspace: two owners demoting each other at once
        # cannot both succeed and leave it with none.
        await conn.execute("SELECT 1 FROM workspaces WHERE id = $1 FOR UPDATE", workspace_id)

    @staticmethod
    async def _keep_an_owner(conn: asyncpg.Connection, workspace_id: UUID, user_id: UUID) -> None:
        others = await conn.fetchval(
            """SELECT count(*) FROM workspace_members
               WHERE workspace_id = $1 AND role = 'owner' AND user_id <> $2""", workspace_id, user_id)
        current = await conn.fetchval(
            "SELECT role FROM workspace_members WHERE workspace_id = $1 AND user_id = $2", workspace_id, user_id)
        if current == Role.OWNER.value and others == 0:
            raise ConflictError("a workspace keeps at least one owner: make someone else owner first")
