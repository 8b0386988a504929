"""SQL for a task's state stored centrally: the git objects of its turns and the agent's session."""

from __future__ import annotations

from typing import cast
from uuid import UUID

from aicode.db.pool import Database

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
