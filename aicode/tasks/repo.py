"""SQL for tasks and their events. Methods take an optional connection to join a transaction."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any, TypeAlias, cast
from uuid import UUID

import asyncpg

from aicode.access.repo import visible_to
from aicode.db.pool import Database
from aicode.tasks.models import NewTask, TaskChange, TaskEvent, TaskRecord, TaskStatus

__all__ = ["TASK_COLUMNS", "Executor", "TaskEventRepo", "TaskRepo"]

_PLAIN_COLUMNS = (
    "id, workspace_id, user_id, agent, prompt, model, max_turns, timeout_s, base_branch, branch, base_commit,"
    " head_commit, session_id, status, error, pending_prompt, turns, cost_usd, input_tokens, output_tokens,"
    " cache_read_tokens, cache_write_tokens, last_seq, created_at, started_at, finished_at, updated_at, max_cost_usd,"
    " node, remote_branch, pushed_commit, pull_request, origin, kind"
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

    async def insert(self, new: NewTask, conn: Executor | None = None) -> TaskRecord:
        """The task, queued, with its prompt as the pending turn's."""
        row = await self._x(conn).fetchrow(
            f"""INSERT INTO tasks (id, workspace_id, user_id, agent, prompt, pending_prompt, model, max_turns,
                                   timeout_s, base_branch, branch, max_cost_usd, origin, kind)
                VALUES ($1, $2, $3, $4, $5, nullif($5, ''), $6, $7, $8, $9, $10, $11, $12, $13) RETURNING {_COLUMNS}""",
            new.id, new.workspace_id, new.user_id, new.agent, new.prompt, new.model, new.max_turns, new.timeout_s,
            new.base_branch, new.branch, new.max_cost_usd, new.origin, new.kind,
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

    async def latest_workspace_and_agent(self) -> tuple[UUID, str] | None:
        """The workspace and agent of the task submitted last."""
        row = await self._db.pool.fetchrow("SELECT workspace_id, agent FROM tasks ORDER BY created_at DESC LIMIT 1")
        return None if row is None else (row["workspace_id"], row["agent"])

    async def count_queued_by(self, user_id: UUID) -> int:
        """Turns `user_id` asked for that wait in the queue."""
        return cast(int, await self._db.pool.fetchval(
            "SELECT count(*) FROM tasks WHERE status = 'queued' AND coalesce(turn_user_id, user_id) = $1", user_id))

    async def transition(
        self, task_id: UUID, to: TaskStatus, *, allowed_from: tuple[TaskStatus, ...], conn: Executor | None = None,
        error: str | None = None, on_node: str | None = None, change: TaskChange = TaskChange(),
    ) -> TaskRecord | None:
        """Move to status `to` only from one of `allowed_from` (and, with `on_node`, only while that node
        has the task), with `change`; None if the task was elsewhere. `error` replaces the task's error
        (None clears it). Moving to `queued` puts the task at the queue's end."""
        usage = change.usage
        row = await self._x(conn).fetchrow(
            f"""UPDATE tasks SET
                    status = $2,
                    error = $4,
                    pending_prompt = CASE WHEN $5 THEN $6 ELSE pending_prompt END,
                    started_at = CASE WHEN $7 THEN coalesce(started_at, now()) ELSE started_at END,
                    finished_at = CASE WHEN $8 THEN now() WHEN $9 THEN NULL ELSE finished_at END,
                    head_commit = coalesce($10, head_commit),
                    session_id = coalesce($11, session_id),
                    turns = turns + $12,
                    cost_usd = cost_usd + $13,
                    input_tokens = input_tokens + $14,
                    output_tokens = output_tokens + $15,
                    cache_read_tokens = cache_read_tokens + $16,
                    cache_write_tokens = cache_write_tokens + $17,
                    turn_user_id = coalesce($18, turn_user_id),
                    queued_at = CASE WHEN $2 = 'queued' THEN now() ELSE queued_at END,
                    updated_at = now()
                WHERE id = $1 AND status = ANY($3::text[]) AND ($19::text IS NULL OR node = $19)
                RETURNING {_COLUMNS}""",
            task_id, to, list(allowed_from), error, change.set_pending_prompt, change.pending_prompt,
            change.started, change.finished, change.reopened, change.head_commit, change.session_id,
            usage.turns, usage.cost_usd, usage.input_tokens, usage.output_tokens, usage.cache_read_tokens,
            usage.cache_write_tokens, change.turn_user_id, on_node,
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
        seqs = list(range(first, last + 1))
        # Only the timestamps come back: the types and data are the ones given (decoding them again
        # from the database was a cost per event on the hottest path).
        rows = await conn.fetch(
            """INSERT INTO task_events (task_id, seq, type, data)
               SELECT $1, s, t, d FROM unnest($2::bigint[], $3::text[], $4::jsonb[]) AS e(s, t, d)
               RETURNING seq, ts""",
            task_id, seqs, [t for t, _ in events], [d for _, d in events],
        )
        stamped = {row["seq"]: row["ts"] for row in rows}
        return [TaskEvent(task_id=task_id, seq=seq, ts=stamped[seq], type=kind, data=data)
                for seq, (kind, data) in zip(seqs, events, strict=True)]

    async def list(self, task_id: UUID, *, after: int, limit: int, before: int | None = None) -> list[TaskEvent]:
        rows = await self._db.pool.fetch(
            """SELECT seq, ts, type, data FROM task_events
               WHERE task_id = $1 AND seq > $2 AND ($3::bigint IS NULL OR seq < $3)
               ORDER BY seq LIMIT $4""",
            task_id, after, before, limit,
        )
        return [TaskEvent(task_id=task_id, **dict(row)) for row in rows]

    async def last_of_type(self, task_id: UUID, event_type: str) -> TaskEvent | None:
        row = await self._db.pool.fetchrow(
            """SELECT seq, ts, type, data FROM task_events WHERE task_id = $1 AND type = $2
               ORDER BY seq DESC LIMIT 1""", task_id, event_type)
        return None if row is None else TaskEvent(task_id=task_id, **dict(row))

    async def of_types(self, task_id: UUID, event_types: Sequence[str]) -> builtins.list[TaskEvent]:
        """The task's events of `event_types`, oldest first."""
        rows = await self._db.pool.fetch(
            """SELECT seq, ts, type, data FROM task_events WHERE task_id = $1 AND type = ANY($2::text[])
               ORDER BY seq""", task_id, list(event_types))
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
