"""SQL behind the pages: task lists with their workspace and author, and 30-day usage per workspace.

Every query takes `viewer_id`: a member sees the tasks of the workspaces they have a role in (the
same rule as `TaskRepo.list_visible`, `aicode.access.repo.visible_to`); None means an admin.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from aicode.access.repo import visible_to
from aicode.db.pool import Database
from aicode.web.turn_clock import TurnMark

__all__ = ["DashboardRepo", "TaskFilter", "TaskRow", "WorkspaceUsage"]

_ROW_COLUMNS = """t.id, t.workspace_id, w.name AS workspace_name, u.username, t.agent, t.status, t.prompt, t.cost_usd,
    t.input_tokens, t.output_tokens, t.created_at, t.started_at, t.finished_at, t.kind"""
_FROM_VISIBLE = f"""FROM tasks t JOIN workspaces w ON w.id = t.workspace_id JOIN users u ON u.id = t.user_id
    WHERE {visible_to("t.workspace_id", "$1")}"""


@dataclass(frozen=True, slots=True)
class TaskRow:
    """A task as a list shows it: with its workspace's name and its author's username."""

    id: UUID
    workspace_id: UUID
    workspace_name: str
    username: str
    agent: str
    status: str
    prompt: str
    cost_usd: float
    input_tokens: int
    output_tokens: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    kind: str  # "task", or "session": a live session


@dataclass(frozen=True, slots=True)
class TaskFilter:
    """The workspace page's filters; None or empty means "any"."""

    status: str | None = None
    username: str | None = None
    text: str | None = None


@dataclass(frozen=True, slots=True)
class WorkspaceUsage:
    workspace_id: UUID
    name: str
    tasks: int
    cost_usd: float


def _rows(records: list[asyncpg.Record]) -> list[TaskRow]:
    return [TaskRow(**dict(record)) for record in records]


def _like(text: str) -> str:
    """An ILIKE pattern matching `text` literally anywhere."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class DashboardRepo:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def recent(self, viewer_id: UUID | None, *, limit: int, status: str | None = None) -> list[TaskRow]:
        """The newest tasks the viewer may see, optionally only those in one status."""
        records = await self._db.pool.fetch(
            f"""SELECT {_ROW_COLUMNS} {_FROM_VISIBLE} AND ($2::text IS NULL OR t.status = $2)
                ORDER BY t.created_at DESC, t.id LIMIT $3""",
            viewer_id, status, limit,
        )
        return _rows(records)

    async def one(self, task_id: UUID) -> TaskRow | None:
        """One task with its names; the caller has already checked that the viewer may see it."""
        record = await self._db.pool.fetchrow(
            f"""SELECT {_ROW_COLUMNS} {_FROM_VISIBLE} AND t.id = $2""", None, task_id,
        )
        return None if record is None else TaskRow(**dict(record))

    async def in_workspace(
        self, viewer_id: UUID | None, workspace_id: UUID, found: TaskFilter, *, limit: int
    ) -> list[TaskRow]:
        """One workspace's tasks, newest first, narrowed by status, author and prompt text."""
        records = await self._db.pool.fetch(
            f"""SELECT {_ROW_COLUMNS} {_FROM_VISIBLE} AND t.workspace_id = $2
                  AND ($3::text IS NULL OR t.status = $3)
                  AND ($4::text IS NULL OR lower(u.username) = lower($4))
                  AND ($5::text IS NULL OR t.prompt ILIKE $5)
                ORDER BY t.created_at DESC, t.id LIMIT $6""",
            viewer_id, workspace_id, found.status or None, found.username or None,
            _like(found.text) if found.text else None, limit,
        )
        return _rows(records)

    async def count_in_workspace(self, workspace_id: UUID) -> int:
        """How many tasks the workspace holds (all of them: what deleting it would remove)."""
        return int(await self._db.pool.fetchval("SELECT count(*) FROM tasks WHERE workspace_id = $1", workspace_id))

    async def has_submitted(self, user_id: UUID) -> bool:
        """Whether the user has started a task (or session) of their own: the first-run checklist's last step."""
        return bool(await self._db.pool.fetchval("SELECT EXISTS (SELECT 1 FROM tasks WHERE user_id = $1)", user_id))

    async def authors(self, viewer_id: UUID | None, workspace_id: UUID) -> list[str]:
        """Who has submitted tasks in the workspace (that the viewer may see), for the "who" filter."""
        records = await self._db.pool.fetch(
            f"""SELECT DISTINCT u.username {_FROM_VISIBLE} AND t.workspace_id = $2 ORDER BY u.username""",
            viewer_id, workspace_id,
        )
        return [record["username"] for record in records]

    async def usage(self, viewer_id: UUID | None, *, days: int) -> list[WorkspaceUsage]:
        """Task count and cost per workspace over the last `days` days, busiest first."""
        records = await self._db.pool.fetch(
            f"""SELECT t.workspace_id, w.name, count(*)::int AS tasks, coalesce(sum(t.cost_usd), 0) AS cost_usd
                {_FROM_VISIBLE} AND t.created_at >= now() - make_interval(days => $2)
                GROUP BY t.workspace_id, w.name ORDER BY cost_usd DESC, tasks DESC, w.name""",
            viewer_id, days,
        )
        return [WorkspaceUsage(workspace_id=r["workspace_id"], name=r["name"], tasks=r["tasks"],
                               cost_usd=float(r["cost_usd"])) for r in records]

    async def turn_marks(self, task_id: UUID) -> list[TurnMark]:
        """The task's events that start or end its turns, oldest first (for its run time and model turns)."""
        records = await self._db.pool.fetch(
            """SELECT seq, ts, type, data->>'status' AS status, data->>'code' AS code,
                      CASE WHEN jsonb_typeof(data->'num_turns') = 'number'
                           THEN (data->>'num_turns')::numeric::bigint END AS num_turns
               FROM task_events WHERE task_id = $1
                 AND (type IN ('task.status', 'turn.completed') OR (type = 'notice' AND data->>'code' = 'follow_up'))
               ORDER BY seq""",
            task_id,
        )
        return [TurnMark(**dict(record)) for record in records]
