"""Request and response shapes of the review comment endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

__all__ = ["Comment", "CommentCreate", "Side"]

# "new": the right side of the diff (the task's head), "old": the left side (its base).
Side = Literal["new", "old"]


class CommentCreate(msgspec.Struct, forbid_unknown_fields=True):
    path: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]
    line: Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)]
    body: Annotated[str, msgspec.Meta(min_length=1, max_length=10_000)]
    side: Side = "new"


class Comment(msgspec.Struct):
    id: int
    task_id: UUID
    path: str
    line: int
    side: str
    body: str
    author: str
    created_at: datetime
    sent_at: datetime | None  # null until the comment was sent to the agent
    quote: str | None  # the code line it refers to, when the diff shows it
