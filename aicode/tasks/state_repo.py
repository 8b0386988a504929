"""SQL for a task's state stored centrally: the git objects of its turns and the agent's session."""

from __future__ import annotations

from datetime import datetime
from typing import cast
from uuid import UUID

from aicode.db.pool import Database
from aicode.tasks.models import TERMINAL_STATUSES

__all__ = ["TaskStateRepo"]


class TaskStateRepo:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_objects(self, task_id: UUID, since: str, head: str, objects: bytes) -> None:
        await self._db.pool.execute(
            """INSERT INTO task_objects (task_id, since, head, objects) VALUES ($1, $2, $3, $4)
               ON CONFLICT (task_id, head) DO NOTHING""",
            task_id, since, head, objects,
        )

    async def objects(self, task_id: UUID) -> list[bytes]:
        rows = await self._db.pool.fetch(
            "SELECT objects FROM task_objects WHERE task_id = $1 ORDER BY created_at", task_id)
        return [row["objects"] for row in rows]

    async def save_session(self, task_id: UUID, archive: bytes) -> None:
        await self._db.pool.execute(
            """INSERT INTO task_sessions (task_id, archive) VALUES ($1, $2)
               ON CONFLICT (task_id) DO UPDATE SET archive = EXCLUDED.archive, updated_at = now()""",
            task_id, archive,
        )

    async def session(self, task_id: UUID) -> bytes | None:
        return cast(bytes | None, await self._db.pool.fetchval(
            "SELECT archive FROM task_sessions WHERE task_id = $1", task_id))

    # -- retention ----------------------------------------------------------------------------------

    async def ended_before(self, cutoff: datetime, task_ids: list[UUID]) -> list[UUID]:
        """Of `task_ids`, those that ended before `cutoff` and are not running or queued again."""
        rows = await self._db.pool.fetch(
            """SELECT id FROM tasks WHERE id = ANY($1::uuid[]) AND status = ANY($2::text[])
                 AND finished_at < $3""", task_ids, list(TERMINAL_STATUSES), cutoff)
        return [row["id"] for row in rows]

    async def forget_ended_before(self, cutoff: datetime) -> tuple[int, int]:
        """Drop the central state of tasks ended before `cutoff` (their session starts afresh on a
        follow-up); returns (tasks, bytes freed)."""
        async with self._db.transaction() as conn:
            rows = await conn.fetch(
                """UPDATE tasks SET state_collected_at = now(), session_id = NULL
                   WHERE status = ANY($1::text[]) AND finished_at < $2 AND state_collected_at IS NULL
                   RETURNING id""", list(TERMINAL_STATUSES), cutoff)
            ids = [row["id"] for row in rows]
            freed = await conn.fetchval(
                """SELECT coalesce((SELECT sum(octet_length(objects)) FROM task_objects WHERE task_id = ANY($1::uuid[])), 0)
                        + coalesce((SELECT sum(octet_length(archive)) FROM task_sessions WHERE task_id = ANY($1::uuid[])), 0)""",
                ids)
            await conn.execute("DELETE FROM task_objects WHERE task_id = ANY($1::uuid[])", ids)
            await conn.execute("DELETE FROM task_sessions WHERE task_id = ANY($1::uuid[])", ids)
        return len(ids), int(freed or 0)
