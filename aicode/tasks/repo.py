"""SQL for tasks and their events. Methods take an optional connection to join a transaction."""

from __future__ import annotations

import builtins
from typing import Any, TypeAlias, cast
from uuid import UUID

import asyncpg

from aicode.access.repo import visible_to
from aicode.db.pool import Database
from aicode.tasks.models import TaskEvent, TaskRecord

__all__ = ["TASK_COLUMNS", "Executor", "TaskEventRepo", "TaskRepo"]

_PLAIN_COLUMNS = (
    "id, workspace_id, user_id, agent, prompt, model, max_turns, timeout_s, base_branch, branch, base_commit,"
    " head_commit, session_id, status, error, pending_prompt, turns, cost_usd, input_tokens, output_tokens,"
    " cache_read_tokens, cache_write_tokens, last_seq, created_at, started_at, finished_at, updated_at, max_cost_usd,"
    " node"
).split(", ")


def _columns(table: str = "") -> str:
    """The select list of a task; `turn_user_id` NULL means the creator asked for the turn."""
    prefix = f"{table}." if table else ""
    return ", ".join([*(prefix + c for c in _PLAIN_COLUMNS),
                      f"coalesce({prefix}turn_user_id, {prefix}user_id) AS turn_user_id"])


_COLUMNS = _columns()
TASK_COLUMNS = _COLUMNS
Executor: TypeAlias = asyncpg.Connection | asyncpg.Pool


def _record(row: asyncpg.Record | None) -> TaskRecord | None:
    return None if row is None else TaskRecord.from_row(row)


class TaskRepo:
    def __init__(self, db: Database) -> None:
        self._db = db

    def _x(self, conn: Executor | None) -> Executor:
        return conn if conn is not None else self._db.pool

    async def insert(self, conn: Executor | None = None, **fields: Any) -> TaskRecord:
        columns = ("id", "workspace_id", "user_id", "agent", "prompt", "pending_prompt", "model",
                   "max_turns", "timeout_s", "base_branch", "branch", "max_cost_usd")
        placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
        row = await self._x(conn).fetchrow(
            f"INSERT INTO tasks ({', '.join(columns)}) VALUES ({placeholders}) RETURNING {_COLUMNS}",
            *(fields[c] for c in columns),
        )
        assert row is not None
        return TaskRecord.from_row(row)

    async def get(self, task_id: UUID, conn: Executor | None = None) -> TaskRecord | None:
        return _record(await self._x(conn).fetchrow(f"SELECT {_COLUMNS} FROM tasks WHERE id = $1", task_id))

    async def list_visible(
        self, viewer_id: UUID | None, *, workspace_id: UUID | None, status: str | None, limit: int
    ) -> list[TaskRecord]:
        """Tasks in the workspaces the viewer has a role in (all, for `viewer_id` None: an admin)."""
        rows = await self._db.pool.fetch(
            f"""SELECT {_columns("t")}
                FROM tasks t
                WHERE {visible_to("t.workspace_id", "$1")}
                  AND ($2::uuid IS NULL OR t.workspace_id = $2)
                  AND ($3::text IS NULL OR t.status = $3)
                ORDER BY t.created_at DESC, t.id LIMIT $4""",
            viewer_id, workspace_id, status, limit,
        )
        return [TaskRecord.from_row(row) for row in rows]

    async def count_queued_by(self, user_id: UUID) -> int:
        """Turns `user_id` asked for that wait in the queue."""
        return cast(int, await self._db.pool.fetchval(
            "SELECT count(*) FROM tasks WHERE status = 'queued' AND coalesce(turn_user_id, user_id) = $1", user_id))

    async def transition(
        self, task_id: UUID, to: str, *, allowed_from: tuple[str, ...], conn: Executor | None = None,
        error: str | None = None, on_node: str | None = None, **changes: Any,
    ) -> TaskRecord | None:
        """Move to status `to` only from one of `allowed_from` (and, with `on_node`, only while that node
        has the task); None if the task was elsewhere. Moving to `queued` puts it at the queue's end.

        `error` replaces the task's error (None clears it). `changes` may hold: pending_prompt (set,
        or cleared with None), turn_user_id (who asked for the next turn), started=True (started_at, once), finished=True (finished_at now),
        reopened=True (finished_at cleared), base_commit / head_commit / session_id (kept when
        None), and turns, cost_usd and token counts to add to the totals.
        """
        row = await self._x(conn).fetchrow(
            f"""UPDATE tasks SET
                    status = $2,
                    error = $4,
                    pending_prompt = CASE WHEN $5 THEN $6 ELSE pending_prompt END,
                    started_at = CASE WHEN $7 THEN coalesce(started_at, now()) ELSE started_at END,
                    finished_at = CASE WHEN $8 THEN now() WHEN $9 THEN NULL ELSE finished_at END,
                    base_commit = coalesce($10, base_commit),
                    head_commit = coalesce($11, head_commit),
                    session_id = coalesce($12, session_id),
                    turns = turns + $13,
                    cost_usd = cost_usd + $14,
                    input_tokens = input_tokens + $15,
                    output_tokens = output_tokens + $16,
                    cache_read_tokens = cache_read_tokens + $17,
                    cache_write_tokens = cache_write_tokens + $18,
                    turn_user_id = coalesce($19, turn_user_id),
                    queued_at = CASE WHEN $2 = 'queued' THEN now() ELSE queued_at END,
                    updated_at = now()
                WHERE id = $1 AND status = ANY($3::text[]) AND ($20::text IS NULL OR node = $20)
                RETURNING {_COLUMNS}""",
            task_id, to, list(allowed_from), error,
            "pending_prompt" in changes, changes.get("pending_prompt"),
            bool(changes.get("started")), bool(changes.get("finished")), bool(changes.get("reopened")),
            changes.get("base_commit"), changes.get("head_commit"), changes.get("session_id"),
            int(changes.get("turns", 0)), float(changes.get("cost_usd") or 0.0),
            int(changes.get("input_tokens", 0)), int(changes.get("output_tokens", 0)),
            int(changes.get("cache_read_tokens", 0)), int(changes.get("cache_write_tokens", 0)),
            changes.get("turn_user_id"), on_node,
        )
        return _record(row)

    async def set_base_commit(self, task_id: UUID, base_commit: str) -> None:
        await self._db.pool.execute(
            "UPDATE tasks SET base_commit = $2, updated_at = now() WHERE id = $1", task_id, base_commit
        )


class TaskEventRepo:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def append(
        self, conn: asyncpg.Connection, task_id: UUID, events: list[tuple[str, dict[str, Any]]]
    ) -> list[TaskEvent]:
        """Give `events` the task's next seqs and store them; call inside a transaction.

        The counter row lock serialises writers of one task, which is what makes seqs gapless
        even with several server processes.
        """
        if not events:
            return []
        last = await conn.fetchval(
            "UPDATE tasks SET last_seq = last_seq + $2 WHERE id = $1 RETURNING last_seq", task_id, len(events)
        )
        if last is None:
            return []
        first = last - len(events) + 1
        rows = await conn.fetch(
            """INSERT INTO task_events (task_id, seq, type, data)
               SELECT $1, s, t, d FROM unnest($2::bigint[], $3::text[], $4::jsonb[]) AS e(s, t, d)
               RETURNING seq, ts, type, data""",
            task_id, list(range(first, last + 1)), [t for t, _ in events], [d for _, d in events],
        )
        return [TaskEvent(task_id=task_id, **dict(row)) for row in sorted(rows, key=lambda r: r["seq"])]

    async def list(self, task_id: UUID, *, after: int, limit: int, before: int | None = None) -> list[TaskEvent]:
        rows = await self._db.pool.fetch(
            """SELECT seq, ts, type, data FROM task_events
               WHERE task_id = $1 AND seq > $2 AND ($3::bigint IS NULL OR seq < $3)
               ORDER BY seq LIMIT $4""",
            task_id, after, before, limit,
        )
        return [TaskEvent(task_id=task_id, **dict(row)) for row in rows]

    async def list_latest(
        self, task_id: UUID, *, after: int, before: int | None, limit: int
    ) -> builtins.list[TaskEvent]:
        """The newest `limit` events in (after, before), oldest first: a long task's tail without reading it all."""
        rows = await self._db.pool.fetch(
            """SELECT seq, ts, type, data FROM task_events
               WHERE task_id = $1 AND seq > $2 AND ($3::bigint IS NULL OR seq < $3)
               ORDER BY seq DESC LIMIT $4""",
            task_id, after, before, limit,
        )
        return [TaskEvent(task_id=task_id, **dict(row)) for row in reversed(rows)]
