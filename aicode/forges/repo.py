"""SQL of the forge round trip: what a task pushed and opened, forge logins, deliveries acted on."""

from __future__ import annotations

from typing import Any, cast
from uuid import UUID

import asyncpg

from aicode.db.errors import is_unique_violation
from aicode.db.pool import Database
from aicode.errors import ConflictError
from aicode.tasks.models import TERMINAL_STATUSES, TaskRecord
from aicode.tasks.repo import TASK_COLUMNS

__all__ = ["ForgeRepo"]

# Delivery ids are kept this long: forges redeliver within hours, not months.
_DELIVERY_DAYS = 30


class ForgeRepo:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- what a task pushed and opened ----------------------------------------------------------------

    async def set_pushed(self, task_id: UUID, remote_branch: str, commit: str) -> None:
        await self._db.pool.execute(
            "UPDATE tasks SET remote_branch = $2, pushed_commit = $3, updated_at = now() WHERE id = $1",
            task_id, remote_branch, commit)

    async def set_pull_request(self, task_id: UUID, pull_request: dict[str, Any]) -> None:
        await self._db.pool.execute(
            "UPDATE tasks SET pull_request = $2, updated_at = now() WHERE id = $1", task_id, pull_request)

    async def set_origin(self, task_id: UUID, origin: dict[str, Any] | None) -> None:
        await self._db.pool.execute("UPDATE tasks SET origin = $2 WHERE id = $1", task_id, origin)

    async def task_for_pull_request(self, workspace_id: UUID, number: int) -> UUID | None:
        """The task whose pull request on the workspace's forge has this number."""
        return cast(UUID | None, await self._db.pool.fetchval(
            """SELECT id FROM tasks WHERE workspace_id = $1 AND pull_request IS NOT NULL
                 AND pull_request ->> 'number' = $2::text
               ORDER BY created_at DESC LIMIT 1""", workspace_id, str(number)))

    async def claim_reply(self, task_id: UUID) -> bool:
        """True once per task: the forge comment that started it is answered by one node, one time."""
        row = await self._db.pool.fetchrow(
            """UPDATE tasks SET origin = origin || '{"replied": true}'::jsonb
               WHERE id = $1 AND origin IS NOT NULL AND NOT coalesce((origin ->> 'replied')::boolean, false)
               RETURNING id""", task_id)
        return row is not None

    async def rebased(self, task_id: UUID, *, old_base: str, old_head: str | None, new_base: str,
                      new_head: str | None) -> TaskRecord | None:
        """Move the task onto its new base, if it is still as it was read and no turn is under way."""
        row = await self._db.pool.fetchrow(
            f"""UPDATE tasks SET base_commit = $4, head_commit = $5, updated_at = now()
                WHERE id = $1 AND base_commit = $2 AND head_commit IS NOT DISTINCT FROM $3
                  AND status = ANY($6::text[])
                RETURNING {TASK_COLUMNS}""",
            task_id, old_base, old_head, new_base, new_head, list(TERMINAL_STATUSES))
        return None if row is None else TaskRecord.from_row(row)

    # -- forge logins ---------------------------------------------------------------------------------

    async def identities(self, user_id: UUID) -> dict[str, str]:
        rows = await self._db.pool.fetch("SELECT kind, login FROM forge_identities WHERE user_id = $1", user_id)
        return {row["kind"]: row["login"] for row in rows}

    async def set_identities(self, user_id: UUID, logins: dict[str, str | None]) -> dict[str, str]:
        """Link (a login) or unlink (None) each forge kind given; 409 when another user has the login."""
        try:
            async with self._db.transaction() as conn:
                for kind, login in logins.items():
                    await conn.execute("DELETE FROM forge_identities WHERE user_id = $1 AND kind = $2", user_id, kind)
                    if login is not None:
                        await conn.execute(
                            "INSERT INTO forge_identities (user_id, kind, login) VALUES ($1, $2, $3)",
                            user_id, kind, login)
        except asyncpg.UniqueViolationError as exc:
            if is_unique_violation(exc, "forge_identities_login_key"):
                raise ConflictError("that forge login is linked to another aicode user already: they unlink it "
                                    "(or an admin removes that user) first") from None
            raise
        return await self.identities(user_id)

    async def user_for(self, kind: str, login: str) -> UUID | None:
        return cast(UUID | None, await self._db.pool.fetchval(
            "SELECT user_id FROM forge_identities WHERE kind = $1 AND lower(login) = lower($2)", kind, login))

    # -- deliveries -----------------------------------------------------------------------------------

    async def claim_delivery(self, kind: str, delivery_id: str, workspace_id: UUID) -> bool:
        """True the first time a delivery id is seen; False for a replay."""
        async with self._db.transaction() as conn:
            await conn.execute(
                f"DELETE FROM forge_deliveries WHERE received_at < now() - interval '{_DELIVERY_DAYS} days'")
            row = await conn.fetchrow(
                """INSERT INTO forge_deliveries (kind, delivery_id, workspace_id) VALUES ($1, $2, $3)
                   ON CONFLICT DO NOTHING RETURNING delivery_id""", kind, delivery_id, workspace_id)
        return row is not None
