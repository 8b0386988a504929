"""HTTP endpoints for review comments on a task's diff: list, add, delete, and send to the agent."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, Parameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from aicode.auth.models import UserRecord
from aicode.comments.repo import CommentRecord
from aicode.comments.schemas import Comment, CommentCreate
from aicode.comments.service import CommentService
from aicode.tasks.controller import task_out
from aicode.tasks.schemas import Task

__all__ = ["CommentController", "comment_out"]

# Comment ids are PostgreSQL bigints: a larger number is a 400 here, not an overflow in the database.
CommentId = Annotated[int, Parameter(ge=1, le=2**63 - 1)]


def comment_out(comment: CommentRecord) -> Comment:
    return Comment(id=comment.id, task_id=comment.task_id, path=comment.path, line=comment.line, side=comment.side,
                   body=comment.body, author=comment.author, created_at=comment.created_at, sent_at=comment.sent_at,
                   quote=comment.quote)


class CommentController(Controller):
    path = "/api/tasks/{task_id:uuid}/comments"
    tags = ["tasks"]

    @get("/")
    async def list_comments(
        self, task_id: FromPath[UUID], request: Request[UserRecord, Any, Any],
        comment_service: NamedDependency[CommentService],
    ) -> list[Comment]:
        """The review comments on the task's diff, oldest first (newest last), sent or not."""
        return [comment_out(c) for c in await comment_service.list(request.user, task_id)]

    @post("/", status_code=HTTP_201_CREATED)
    async def add(
        self, task_id: FromPath[UUID], data: JSONBody[CommentCreate], request: Request[UserRecord, Any, Any],
        comment_service: NamedDependency[CommentService],
    ) -> Comment:
        """Comment on a line of a changed file: `side` "new" is the task's version, "old" the one before."""
        return comment_out(await comment_service.add(request.user, task_id, data))

    @delete("/{comment_id:int}", status_code=HTTP_204_NO_CONTENT)
    async def remove(
        self, task_id: FromPath[UUID], comment_id: CommentId, request: Request[UserRecord, Any, Any],
        comment_service: NamedDependency[CommentService],
    ) -> None:
        """Delete a comment: its author, or an owner of the workspace."""
        await comment_service.delete(request.user, task_id, comment_id)

    @post("/send", status_code=HTTP_202_ACCEPTED)
    async def send(
        self, task_id: FromPath[UUID], request: Request[UserRecord, Any, Any],
        comment_service: NamedDependency[CommentService],
    ) -> Task:
        """Send the open comments to the agent as one follow-up (as POST /api/tasks/{id}/messages does)."""
        return task_out(await comment_service.send(request.user, task_id))
