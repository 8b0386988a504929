"""SQL for the queue of turns shared by every node: claims, wake-ups, cancels, and lost nodes' turns."""

from __future__ import annotations

from typing import cast
from uuid import UUID

import asyncpg

from aicode.db.pool import Database
from aicode.tasks.models import TaskRecord, TaskStatus
from aicode.tasks.repo import TASK_COLUMNS, Executor

__all__ = ["CANCEL_CHANNEL", "QUEUE_CHANNEL", "TaskQueueRepo"]

QUEUE_CHANNEL = "aicode_queue"
CANCEL_CHANNEL = "aicode_cancel"
# Claims take this transaction-level lock: the per-user and per-workspace limits count running turns
# on every node, which only holds if two claims never count at the same moment.
_CLAIM_LOCK = 0x61_69_63_6F_64_65_71  # "aicodeq"

# The requester of a turn: who asked for it (a follow-up's sender), else the task's creator.
_REQUESTER = "coalesce(t.turn_user_id, t.user_id)"

_CLAIM = f"""
WITH running AS (
    SELECT coalesce(turn_user_id, user_id) AS requester, workspace_id FROM tasks WHERE status = 'running'
), eligible AS (
    SELECT DISTINCT ON ({_REQUESTER}) t.id, {_REQUESTER} AS requester, t.queued_at
    FROM tasks t
    WHERE t.status = 'queued'
      AND ($1::int IS NULL OR (SELECT count(*) FROM running r WHERE r.requester = {_REQUESTER}) < $1)
      AND ($2::int IS NULL OR (SELECT count(*) FROM running r WHERE r.workspace_id = t.workspace_id) < $2)
    ORDER BY {_REQUESTER}, t.queued_at, t.id
)
SELECT e.id, e.requester FROM eligible e LEFT JOIN queue_served s ON s.user_id = e.requester
ORDER BY s.served_at NULLS FIRST, e.queued_at, e.id
LIMIT 8
"""


class TaskQueueRepo:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def notify_queued(self, conn: Executor | None = None) -> None:
        """Wake every node's dispatcher (inside a transaction: once it commits)."""
        await (conn or self._db.pool).execute("SELECT pg_notify($1, '')", QUEUE_CHANNEL)

    async def notify_cancel(self, task_id: UUID) -> None:
        await self._db.pool.execute("SELECT pg_notify($1, $2)", CANCEL_CHANNEL, str(task_id))

    async def claim(self, conn: asyncpg.Connection, node: str, *, per_user: int | None,
                    per_workspace: int | None) -> TaskRecord | None:
        """Take the next queued turn for `node`, fairly across requesters and within the limits;
        call inside a transaction (the task becomes `running` when it commits)."""
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _CLAIM_LOCK)
        # Any node may take any turn: a task's state is restored from the database where it is not local.
        for picked in await conn.fetch(_CLAIM, per_user, per_workspace):
            # A row another transaction holds (a cancel under way) is skipped, not waited for.
            row = await conn.fetchrow(
                f"""UPDATE tasks SET status = 'running', node = $2, started_at = coalesce(started_at, now()),
                           updated_at = now()
                    WHERE id = (SELECT id FROM tasks WHERE id = $1 AND status = 'queued' FOR UPDATE SKIP LOCKED)
                    RETURNING {TASK_COLUMNS}""",
                picked["id"], node,
            )
            if row is None:
                continue
            await conn.execute(
                """INSERT INTO queue_served (user_id, served_at) VALUES ($1, clock_timestamp())
                   ON CONFLICT (user_id) DO UPDATE SET served_at = EXCLUDED.served_at""",
                picked["requester"],
            )
            return TaskRecord.from_row(row)
        return None

    async def running_on(self, node: str) -> set[UUID]:
        rows = await self._db.pool.fetch("SELECT id FROM tasks WHERE status = 'running' AND node = $1", node)
        return {row["id"] for row in rows}

    async def adopt_running(self, node: str) -> list[UUID]:
        """Running turns this node must settle at start-up: its own from an earlier life, and any
        recorded before nodes existed (a single server's, whose working copies are here)."""
        rows = await self._db.pool.fetch(
            """UPDATE tasks SET node = $1 WHERE status = 'running' AND (node = $1 OR node IS NULL)
               RETURNING id""",
            node,
        )
        return [row["id"] for row in rows]

    async def on_lost_nodes(self, node: str) -> list[tuple[UUID, str]]:
        """Running turns of nodes whose lease has run out (not `node`'s own): (task id, their node)."""
        rows = await self._db.pool.fetch(
            """SELECT t.id, t.node FROM tasks t JOIN nodes n ON n.name = t.node
               WHERE t.status = 'running' AND n.name <> $1 AND n.lease_until < now()""",
            node,
        )
        return [(row["id"], row["node"]) for row in rows]

    @staticmethod
    async def interrupt(conn: asyncpg.Connection, task_id: UUID, node: str, error: str) -> TaskRecord | None:
        """End the turn `node` was running as `interrupted`; None if it is no longer that node's running turn."""
        row = await conn.fetchrow(
            f"""UPDATE tasks SET status = '{TaskStatus.INTERRUPTED}', error = $3, finished_at = now(),
                       pending_prompt = NULL, updated_at = now()
                WHERE id = $1 AND status = 'running' AND node = $2 RETURNING {TASK_COLUMNS}""",
            task_id, node, error,
        )
        return None if row is None else TaskRecord.from_row(row)

    async def count_queued(self) -> int:
        return cast(int, await self._db.pool.fetchval("SELECT count(*) FROM tasks WHERE status = 'queued'"))
