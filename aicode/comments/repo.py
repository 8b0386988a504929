"""SQL for review comments on a task's diff."""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from aicode.db.pool import Database

__all__ = ["CommentRecord", "CommentRepo", "NewComment"]

_COLUMNS = """c.id, c.task_id, c.user_id, u.username AS author, c.path, c.line, c.side, c.body, c.quote,
              c.created_at, c.sent_at"""


@dataclass(frozen=True, slots=True)
class NewComment:
    task_id: UUID
    user_id: UUID
    path: str
    line: int
    side: str
    body: str
    quote: str | None


@dataclass(frozen=True, slots=True)
class CommentRecord:
    id: int
    task_id: UUID
    user_id: UUID
    author: str
    path: str
    line: int
    side: str
    body: str
    quote: str | None
    created_at: datetime
    sent_at: datetime | None


class CommentRepo:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert(self, comment: NewComment) -> CommentRecord:
        row = await self._db.pool.fetchrow(
            f"""WITH c AS (
                    INSERT INTO task_comments (task_id, user_id, path, line, side, body, quote)
                    VALUES ($1, $2, $3, $4, $5, $6, $7)
                    RETURNING id, task_id, user_id, path, line, side, body, quote, created_at, sent_at)
                SELECT {_COLUMNS} FROM c JOIN users u ON u.id = c.user_id""",
            comment.task_id, comment.user_id, comment.path, comment.line, comment.side, comment.body, comment.quote,
        )
        return CommentRecord(**dict(row))

    async def list(self, task_id: UUID, *, open_only: bool = False) -> list[CommentRecord]:
        """The task's comments, oldest first; with `open_only` those not sent yet."""
        rows = await self._db.pool.fetch(
            f"""SELECT {_COLUMNS} FROM task_comments c JOIN users u ON u.id = c.user_id
                WHERE c.task_id = $1 AND (NOT $2 OR c.sent_at IS NULL) ORDER BY c.id""",
            task_id, open_only,
        )
        return [CommentRecord(**dict(row)) for row in rows]

    async def get(self, task_id: UUID, comment_id: int) -> CommentRecord | None:
        row = await self._db.pool.fetchrow(
            f"""SELECT {_COLUMNS} FROM task_comments c JOIN users u ON u.id = c.user_id
                WHERE c.task_id = $1 AND c.id = $2""",
            task_id, comment_id,
        )
        return None if row is None else CommentRecord(**dict(row))

    async def delete(self, task_id: UUID, comment_id: int) -> bool:
        status: str = await self._db.pool.execute(
            "DELETE FROM task_comments WHERE task_id = $1 AND id = $2", task_id, comment_id)
        return status.endswith(" 1")

    async def mark_sent(self, task_id: UUID, comment_ids: builtins.list[int]) -> None:
        await self._db.pool.execute(
            "UPDATE task_comments SET sent_at = now() WHERE task_id = $1 AND id = ANY($2::bigint[]) "
            "AND sent_at IS NULL",
            task_id, comment_ids,
        )
