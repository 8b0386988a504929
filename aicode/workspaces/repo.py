"""SQL for workspaces."""

from __future__ import annotations

import builtins
from typing import Any, cast
from uuid import UUID

import asyncpg

from aicode.access.repo import visible_to
from aicode.db.errors import is_unique_violation
from aicode.db.pool import Database
from aicode.errors import ConflictError
from aicode.workspaces.models import WorkspaceChange, WorkspaceRecord

__all__ = ["WorkspaceRepo"]

_COLUMNS = (
    "id, owner_id, name, repo_url, repo_token_enc, default_branch, image, limits, network, status, error,"
    " last_synced_at, created_at, updated_at, egress_allow, monthly_budget_usd, forge, forge_token_enc, auto_pr,"
    " setup, setup_timeout_s, webhook_secret_enc"
)
# Columns PATCH may change, each set only when its parameter is not NULL.
_UPDATABLE = ("name", "repo_token_enc", "default_branch", "image", "limits", "network", "egress_allow", "forge",
              "forge_token_enc", "auto_pr", "setup", "setup_timeout_s", "webhook_secret_enc")
# Of those, the ones a change may also remove.
_CLEARABLE = ("forge", "forge_token_enc", "setup", "setup_timeout_s", "webhook_secret_enc")


def _record(row: asyncpg.Record | None) -> WorkspaceRecord | None:
    return None if row is None else WorkspaceRecord(**dict(row))


def _duplicate_name(exc: asyncpg.UniqueViolationError, name: str | None) -> Exception:
    if is_unique_violation(exc, "workspaces_owner_name_key"):
        return ConflictError(f"you already have a workspace named {name!r}")
    return cast(Exception, exc)  # asyncpg has no types: its errors are Any to mypy


class WorkspaceRepo:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert(
        self,
        *,
        owner_id: UUID,
        name: str,
        repo_url: str,
        repo_token_enc: bytes | None,
        default_branch: str | None,
        image: str | None,
        limits: dict[str, Any],
        network: str | None,
        egress_allow: tuple[str, ...] = (),
        forge: WorkspaceChange = WorkspaceChange(),
    ) -> WorkspaceRecord:
        """Insert the workspace with its creator as its first owner, in one transaction. `forge` holds the
        forge round trip's settings (forge, its token, auto_pr, setup)."""
        try:
            async with self._db.transaction() as conn:
                row = await conn.fetchrow(
                    f"""INSERT INTO workspaces
                            (owner_id, name, repo_url, repo_token_enc, default_branch, image, limits, network,
                             egress_allow, forge, forge_token_enc, auto_pr, setup, setup_timeout_s)
                        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, coalesce($12, 'off'), $13, $14)
                        RETURNING {_COLUMNS}""",
                    owner_id, name, repo_url, repo_token_enc, default_branch, image, limits, network,
                    list(egress_allow), forge.forge, forge.forge_token_enc, forge.auto_pr, forge.setup,
                    forge.setup_timeout_s,
                )
                assert row is not None
                await conn.execute(
                    "INSERT INTO workspace_members (workspace_id, user_id, role) VALUES ($1, $2, 'owner')",
                    row["id"], owner_id)
        except asyncpg.UniqueViolationError as exc:
            raise _duplicate_name(exc, name) from None
        return WorkspaceRecord(**dict(row))

    async def get(self, workspace_id: UUID) -> WorkspaceRecord | None:
        return _record(await self._db.pool.fetchrow(f"SELECT {_COLUMNS} FROM workspaces WHERE id = $1", workspace_id))

    async def list(self, member_id: UUID | None) -> list[WorkspaceRecord]:
        """Workspaces `member_id` has a role in, or everyone's when it is None (an admin)."""
        rows = await self._db.pool.fetch(
            f"SELECT {_COLUMNS} FROM workspaces WHERE {visible_to('id', '$1')} ORDER BY lower(name), id",
            member_id,
        )
        return [WorkspaceRecord(**dict(row)) for row in rows]

    async def count_created_by(self, user_id: UUID) -> int:
        return cast(int, await self._db.pool.fetchval("SELECT count(*) FROM workspaces WHERE owner_id = $1", user_id))

    async def list_by_status(self, status: str) -> builtins.list[WorkspaceRecord]:
        rows = await self._db.pool.fetch(f"SELECT {_COLUMNS} FROM workspaces WHERE status = $1", status)
        return [WorkspaceRecord(**dict(row)) for row in rows]

    async def update(self, workspace_id: UUID, change: WorkspaceChange) -> WorkspaceRecord | None:
        unknown = set(change.cleared) - set(_CLEARABLE)
        if unknown:
            raise ValueError(f"these workspace settings cannot be removed: {sorted(unknown)}")
        values = [list(v) if isinstance(v := getattr(change, column), tuple) else v for column in _UPDATABLE]
        assignments = ", ".join(
            f"{col} = CASE WHEN {col in change.cleared} THEN NULL ELSE coalesce(${i}, {col}) END"
            for i, col in enumerate(_UPDATABLE, start=2))
        try:
            row = await self._db.pool.fetchrow(
                f"UPDATE workspaces SET {assignments}, updated_at = now() WHERE id = $1 RETURNING {_COLUMNS}",
                workspace_id, *values,
            )
        except asyncpg.UniqueViolationError as exc:
            raise _duplicate_name(exc, change.name) from None
        return _record(row)

    async def set_monthly_budget(self, workspace_id: UUID, budget_usd: float | None) -> None:
        """Set the workspace's monthly model budget; None removes it."""
        await self._db.pool.execute(
            "UPDATE workspaces SET monthly_budget_usd = $2, updated_at = now() WHERE id = $1", workspace_id, budget_usd)

    async def set_status(
        self,
        workspace_id: UUID,
        status: str,
        *,
        error: str | None = None,
        default_branch: str | None = None,
        synced: bool = False,
    ) -> WorkspaceRecord | None:
        """Record a clone/fetch outcome; a detected default branch only fills an unset one."""
        row = await self._db.pool.fetchrow(
            f"""UPDATE workspaces SET status = $2, error = $3,
                    default_branch = coalesce(default_branch, $4),
                    last_synced_at = CASE WHEN $5 THEN now() ELSE last_synced_at END,
                    updated_at = now()
                WHERE id = $1 RETURNING {_COLUMNS}""",
            workspace_id, status, error, default_branch, synced,
        )
        return _record(row)

    async def delete_idle(self, workspace_id: UUID) -> builtins.list[UUID] | None:
        """Delete the workspace (its tasks go with it) unless a task of it is queued or running.

        Returns the ids of the deleted tasks, or None when an active task kept the workspace.
        """
        async with self._db.transaction() as conn:
            # Locks the row so no task can be submitted between the check and the delete.
            await conn.execute("SELECT 1 FROM workspaces WHERE id = $1 FOR UPDATE", workspace_id)
            active = await conn.fetchval(
                "SELECT count(*) FROM tasks WHERE workspace_id = $1 AND status IN ('queued', 'running')",
                workspace_id,
            )
            if active:
                return None
            rows = await conn.fetch("SELECT id FROM tasks WHERE workspace_id = $1", workspace_id)
            await conn.execute("DELETE FROM workspaces WHERE id = $1", workspace_id)
        return [row["id"] for row in rows]
