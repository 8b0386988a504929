"""SQL for agent credentials."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

from aicode.db.pool import Database

__all__ = ["CredentialRepo", "WorkspaceCredentialRepo"]


class CredentialRepo:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def upsert(self, user_id: UUID, provider: str, kind: str, secret_enc: bytes) -> None:
        await self._db.pool.execute(
            """INSERT INTO agent_credentials (user_id, provider, kind, secret_enc) VALUES ($1, $2, $3, $4)
               ON CONFLICT (user_id, provider)
               DO UPDATE SET kind = EXCLUDED.kind, secret_enc = EXCLUDED.secret_enc, updated_at = now()""",
            user_id, provider, kind, secret_enc,
        )

    async def get(self, user_id: UUID, provider: str) -> asyncpg.Record | None:
        return await self._db.pool.fetchrow(
            "SELECT kind, secret_enc, updated_at FROM agent_credentials WHERE user_id = $1 AND provider = $2",
            user_id, provider,
        )

    async def delete(self, user_id: UUID, provider: str) -> bool:
        status: str = await self._db.pool.execute(
            "DELETE FROM agent_credentials WHERE user_id = $1 AND provider = $2", user_id, provider
        )
        return status.endswith(" 1")

    async def providers(self, user_id: UUID) -> set[str]:
        rows = await self._db.pool.fetch("SELECT provider FROM agent_credentials WHERE user_id = $1", user_id)
        return {row["provider"] for row in rows}

    async def updated_at(self, user_id: UUID, provider: str) -> tuple[str, datetime] | None:
        row = await self.get(user_id, provider)
        return None if row is None else (row["kind"], row["updated_at"])


class WorkspaceCredentialRepo:
    """A workspace's team credential, per provider."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def upsert(self, workspace_id: UUID, provider: str, kind: str, secret_enc: bytes, by: UUID) -> None:
        await self._db.pool.execute(
            """INSERT INTO workspace_credentials (workspace_id, provider, kind, secret_enc, updated_by)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (workspace_id, provider) DO UPDATE SET kind = EXCLUDED.kind,
                   secret_enc = EXCLUDED.secret_enc, updated_by = EXCLUDED.updated_by, updated_at = now()""",
            workspace_id, provider, kind, secret_enc, by,
        )

    async def get(self, workspace_id: UUID, provider: str) -> asyncpg.Record | None:
        return await self._db.pool.fetchrow(
            """SELECT c.kind, c.secret_enc, c.updated_at, u.username AS updated_by
               FROM workspace_credentials c LEFT JOIN users u ON u.id = c.updated_by
               WHERE c.workspace_id = $1 AND c.provider = $2""",
            workspace_id, provider,
        )

    async def providers(self, workspace_id: UUID) -> set[str]:
        rows = await self._db.pool.fetch("SELECT provider FROM workspace_credentials WHERE workspace_id = $1",
                                         workspace_id)
        return {row["provider"] for row in rows}

    async def delete(self, workspace_id: UUID, provider: str) -> bool:
        status: str = await self._db.pool.execute(
            "DELETE FROM workspace_credentials WHERE workspace_id = $1 AND provider = $2", workspace_id, provider)
        return status.endswith(" 1")
