"""SQL for agent credentials."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

from aicode.db.pool import Database

__all__ = ["CredentialRepo"]


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
        status = await self._db.pool.execute(
            "DELETE FROM agent_credentials WHERE user_id = $1 AND provider = $2", user_id, provider
        )
        return status.endswith(" 1")

    async def updated_at(self, user_id: UUID, provider: str) -> tuple[str, datetime] | None:
        row = await self.get(user_id, provider)
        return None if row is None else (row["kind"], row["updated_at"])
