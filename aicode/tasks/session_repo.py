"""SQL for live sessions: prompts waiting for the node that holds a session, and the signals to it."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from aicode.db.pool import Database
from aicode.tasks.repo import Executor

__all__ = ["SESSION_CHANNEL", "SessionPrompt", "SessionRepo"]

# Payload "<verb>:<task id>", verb one of prompt, interrupt, terminate: the node holding the session acts.
SESSION_CHANNEL = "aicode_session"


@dataclass(frozen=True, slots=True)
class SessionPrompt:
    id: int
    user_id: UUID
    prompt: str


class SessionRepo:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_prompt(self, conn: Executor, task_id: UUID, user_id: UUID, prompt: str) -> None:
        """Queue a prompt for the session (in the caller's transaction) and tell the node holding it."""
        await conn.execute("INSERT INTO session_prompts (task_id, user_id, prompt) VALUES ($1, $2, $3)",
                           task_id, user_id, prompt)
        await conn.execute("SELECT pg_notify($1, $2)", SESSION_CHANNEL, f"prompt:{task_id}")

    async def take_prompt(self, task_id: UUID) -> SessionPrompt | None:
        """The oldest waiting prompt, removed from the queue; None when there is none."""
        row = await self._db.pool.fetchrow(
            """DELETE FROM session_prompts WHERE id = (
                   SELECT id FROM session_prompts WHERE task_id = $1 ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
               RETURNING id, user_id, prompt""", task_id)
        return None if row is None else SessionPrompt(row["id"], row["user_id"], row["prompt"])

    async def waiting(self, task_id: UUID) -> int:
        count: int = await self._db.pool.fetchval("SELECT count(*) FROM session_prompts WHERE task_id = $1", task_id)
        return count

    async def drop_prompts(self, task_id: UUID, conn: Executor | None = None) -> None:
        """Forget prompts nobody will answer (the session ended)."""
        await (conn or self._db.pool).execute("DELETE FROM session_prompts WHERE task_id = $1", task_id)

    async def signal(self, verb: str, task_id: UUID) -> None:
        await self._db.pool.execute("SELECT pg_notify($1, $2)", SESSION_CHANNEL, f"{verb}:{task_id}")
