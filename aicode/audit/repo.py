"""SQL for the audit trail."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from aicode.db.pool import Database

__all__ = ["AuditEvent", "AuditRepo"]


@dataclass(frozen=True, slots=True)
class AuditEvent:
    id: int
    at: datetime
    actor_id: UUID | None
    actor: str
    action: str
    target_type: str | None
    target_id: str | None
    detail: dict[str, Any]
    address: str | None


class AuditRepo:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert(self, *, actor_id: UUID | None, actor: str, action: str, target_type: str | None,
                     target_id: str | None, detail: dict[str, Any], address: str | None) -> None:
        await self._db.pool.execute(
            """INSERT INTO audit_events (actor_id, actor, action, target_type, target_id, detail, address)
               VALUES ($1, $2, $3, $4, $5, $6, $7)""",
            actor_id, actor, action, target_type, target_id, detail, address,
        )

    async def list(self, *, actor: str | None, action: str | None, since: datetime | None, before_id: int | None,
                   limit: int) -> list[AuditEvent]:
        """Newest first; `action` matches exactly or as a prefix ending in "." (e.g. "task.")."""
        rows = await self._db.pool.fetch(
            """SELECT id, at, actor_id, actor, action, target_type, target_id, detail, address FROM audit_events
               WHERE ($1::text IS NULL OR lower(actor) = lower($1))
                 AND ($2::text IS NULL OR action = $2 OR (right($2, 1) = '.' AND starts_with(action, $2)))
                 AND ($3::timestamptz IS NULL OR at >= $3)
                 AND ($4::bigint IS NULL OR id < $4)
               ORDER BY id DESC LIMIT $5""",
            actor, action, since, before_id, limit,
        )
        return [AuditEvent(**dict(row)) for row in rows]
