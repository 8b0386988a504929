"""SQL for notification webhooks and their delivery queue."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from aicode.db.pool import Database

__all__ = ["ClaimedDelivery", "NotificationRepo"]

_HOOK_COLUMNS = ("id, user_id, workspace_id, url_shown, format, events, enabled, created_at, last_status, "
                 "last_error, last_attempt_at")
# A webhook's last attempt (a delivery or a test), for its listing.
_HOOK_ATTEMPT = "UPDATE notification_hooks SET last_status = $2, last_error = $3, last_attempt_at = now() WHERE id = $1"


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """A due delivery this node now sends: its attempt number counts this one."""

    id: int
    hook_id: UUID
    attempts: int
    body: dict[str, Any]
    url_enc: bytes


class NotificationRepo:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- webhooks ------------------------------------------------------------------------------------

    async def insert(self, hook_id: UUID, *, user_id: UUID | None, workspace_id: UUID | None, url_enc: bytes,
                     url_shown: str, format_: str, events: list[str], created_by: UUID) -> asyncpg.Record:
        row: asyncpg.Record = await self._db.pool.fetchrow(
            f"""INSERT INTO notification_hooks (id, user_id, workspace_id, url_enc, url_shown, format, events,
                                                created_by)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {_HOOK_COLUMNS}""",
            hook_id, user_id, workspace_id, url_enc, url_shown, format_, events, created_by)
        return row

    async def of_user(self, user_id: UUID) -> list[asyncpg.Record]:
        return list(await self._db.pool.fetch(
            f"SELECT {_HOOK_COLUMNS} FROM notification_hooks WHERE user_id = $1 ORDER BY created_at, id", user_id))

    async def of_workspace(self, workspace_id: UUID) -> list[asyncpg.Record]:
        return list(await self._db.pool.fetch(
            f"SELECT {_HOOK_COLUMNS} FROM notification_hooks WHERE workspace_id = $1 ORDER BY created_at, id",
            workspace_id))

    async def secret_url(self, hook_id: UUID, *, user_id: UUID | None = None,
                         workspace_id: UUID | None = None) -> tuple[str, bytes] | None:
        """(format, encrypted URL) of the user's or the workspace's webhook."""
        row = await self._db.pool.fetchrow(
            """SELECT format, url_enc FROM notification_hooks
               WHERE id = $1 AND (user_id = $2 OR workspace_id = $3)""", hook_id, user_id, workspace_id)
        return None if row is None else (row["format"], row["url_enc"])

    async def delete(self, hook_id: UUID, *, user_id: UUID | None = None, workspace_id: UUID | None = None) -> bool:
        status: str = await self._db.pool.execute(
            "DELETE FROM notification_hooks WHERE id = $1 AND (user_id = $2 OR workspace_id = $3)",
            hook_id, user_id, workspace_id)
        return status.endswith(" 1")

    async def record_attempt(self, hook_id: UUID, status: int | None, error: str | None) -> None:
        await self._db.pool.execute(_HOOK_ATTEMPT, hook_id, status, error)

    # -- the delivery queue --------------------------------------------------------------------------

    async def names(self, task_id: UUID) -> asyncpg.Record | None:
        """The task's workspace name and the usernames of who started it and who asked for its latest turn."""
        return await self._db.pool.fetchrow(
            """SELECT w.name AS workspace, starter.username AS started_by, turner.username AS turn_by
               FROM tasks t JOIN workspaces w ON w.id = t.workspace_id
               LEFT JOIN users starter ON starter.id = t.user_id
               LEFT JOIN users turner ON turner.id = t.turn_user_id
               WHERE t.id = $1""", task_id)

    async def enqueue(self, task_id: UUID, workspace_id: UUID, people: list[UUID], event: str,
                      bodies: dict[str, dict[str, Any]]) -> int:
        """A delivery for each enabled webhook that wants `event`: the workspace's, and those of `people` who
        still see the workspace (a member, or an admin). `bodies`: the body per format."""
        rows = await self._db.pool.fetch(
            """INSERT INTO notification_deliveries (hook_id, task_id, event, body)
               SELECT h.id, $1, $4, CASE h.format WHEN 'slack' THEN $5::jsonb ELSE $6::jsonb END
               FROM notification_hooks h LEFT JOIN users u ON u.id = h.user_id
               WHERE h.enabled AND $4 = ANY (h.events)
                 AND (h.workspace_id = $2
                      OR (h.user_id = ANY ($3::uuid[]) AND NOT u.disabled
                          AND (u.is_admin OR EXISTS (SELECT 1 FROM workspace_members m
                                                     WHERE m.workspace_id = $2 AND m.user_id = h.user_id))))
               RETURNING id""",
            task_id, workspace_id, people, event, bodies["slack"], bodies["json"])
        return len(rows)

    async def claim_due(self, limit: int, lease_s: float) -> list[ClaimedDelivery]:
        """Take up to `limit` due deliveries: each counts an attempt and is not due again for `lease_s` (so a
        node that dies while sending leaves it to another); SKIP LOCKED keeps nodes from taking the same."""
        rows = await self._db.pool.fetch(
            """UPDATE notification_deliveries d
               SET attempts = d.attempts + 1, next_attempt_at = now() + make_interval(secs => $2)
               FROM notification_hooks h
               WHERE h.id = d.hook_id AND d.id IN (
                   SELECT q.id FROM notification_deliveries q JOIN notification_hooks qh ON qh.id = q.hook_id
                   WHERE q.delivered_at IS NULL AND q.abandoned_at IS NULL AND q.next_attempt_at <= now()
                     AND qh.enabled
                   ORDER BY q.next_attempt_at LIMIT $1 FOR UPDATE OF q SKIP LOCKED)
               RETURNING d.id, d.hook_id, d.attempts, d.body, h.url_enc""",
            limit, lease_s)
        return [ClaimedDelivery(id=row["id"], hook_id=row["hook_id"], attempts=row["attempts"], body=row["body"],
                                url_enc=row["url_enc"]) for row in rows]

    async def delivered(self, delivery: ClaimedDelivery, status: int) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                """UPDATE notification_deliveries SET delivered_at = now(), last_status = $2, last_error = NULL
                   WHERE id = $1""", delivery.id, status)
            await conn.execute(_HOOK_ATTEMPT, delivery.hook_id, status, None)

    async def failed(self, delivery: ClaimedDelivery, status: int | None, error: str, retry_in_s: float | None) -> None:
        """Record a failed attempt: due again in `retry_in_s`, or (None) given up."""
        async with self._db.transaction() as conn:
            await conn.execute(
                """UPDATE notification_deliveries SET last_status = $2, last_error = $3,
                       next_attempt_at = CASE WHEN $4::float8 IS NULL THEN next_attempt_at
                                              ELSE now() + make_interval(secs => $4::float8) END,
                       abandoned_at = CASE WHEN $4::float8 IS NULL THEN now() END
                   WHERE id = $1""", delivery.id, status, error, retry_in_s)
            await conn.execute(_HOOK_ATTEMPT, delivery.hook_id, status, error)

    async def seconds_to_next(self) -> float | None:
        """How long until the next delivery is due (0 when one is), None when none waits."""
        value = await self._db.pool.fetchval(
            """SELECT greatest(0, extract(epoch FROM min(d.next_attempt_at) - now()))::float8
               FROM notification_deliveries d JOIN notification_hooks h ON h.id = d.hook_id
               WHERE d.delivered_at IS NULL AND d.abandoned_at IS NULL AND h.enabled""")
        return None if value is None else float(value)
