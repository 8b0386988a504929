"""Writing review comments on a task's diff and sending the open ones to its agent as one follow-up."""

from __future__ import annotations

import builtins
from uuid import UUID

import structlog

from aicode.access.policy import Action
from aicode.auth.models import UserRecord
from aicode.comments.prompt import review_prompt
from aicode.comments.quotes import quote_from_diff
from aicode.comments.repo import CommentRecord, CommentRepo, NewComment
from aicode.comments.schemas import CommentCreate
from aicode.errors import ConflictError, ForbiddenError, InvalidInputError, NotFoundError
from aicode.tasks.models import TaskRecord
from aicode.tasks.service import TaskService

__all__ = ["CommentService"]

log = structlog.get_logger(__name__)


class CommentService:
    def __init__(self, comments: CommentRepo, tasks: TaskService) -> None:
        self._comments = comments
        self._tasks = tasks

    async def list(self, actor: UserRecord, task_id: UUID) -> builtins.list[CommentRecord]:
        """The task's comments, sent or not, oldest first; for anyone who may see the task."""
        await self._tasks.get(actor, task_id)
        return await self._comments.list(task_id)

    async def add(self, actor: UserRecord, task_id: UUID, request: CommentCreate) -> CommentRecord:
        """A comment on a line of one of the task's changed files (editors and owners)."""
        await self._tasks.get(actor, task_id, Action.RUN)
        changed = {change.path for change in await self._tasks.files(actor, task_id)}
        if request.path not in changed:
            raise InvalidInputError(f"path: {request.path!r} is not among the task's changed files "
                                    f"({', '.join(sorted(changed)[:10]) or 'none yet'})")
        quote = quote_from_diff(await self._tasks.diff(actor, task_id), request.path, request.line, request.side)
        return await self._comments.insert(NewComment(
            task_id=task_id, user_id=actor.id, path=request.path, line=request.line, side=request.side,
            body=request.body, quote=quote))

    async def delete(self, actor: UserRecord, task_id: UUID, comment_id: int) -> None:
        """Remove a comment: its author (while still an editor or owner) or the workspace's owners."""
        await self._tasks.get(actor, task_id)
        comment = await self._comments.get(task_id, comment_id)
        if comment is None:
            raise NotFoundError(f"the task has no comment with id {comment_id}")
        if comment.user_id == actor.id:
            await self._tasks.get(actor, task_id, Action.RUN)
        else:
            try:
                await self._tasks.get(actor, task_id, Action.MANAGE)
            except ForbiddenError:
                raise ForbiddenError("only the comment's author or an owner of the workspace may delete it") from None
        await self._comments.delete(task_id, comment_id)

    async def send(self, actor: UserRecord, task_id: UUID) -> TaskRecord:
        """Queue the open comments as one follow-up (as `TaskService.follow_up` does) and mark them sent."""
        await self._tasks.get(actor, task_id, Action.RUN)
        pending = await self._comments.list(task_id, open_only=True)
        if not pending:
            raise ConflictError("the task has no open comments to send: comment on lines of its changes first")
        task = await self._tasks.follow_up(actor, task_id, review_prompt(pending))
        await self._comments.mark_sent(task_id, [comment.id for comment in pending])
        log.info("comments.sent", task_id=str(task_id), count=len(pending), by=actor.username)
        return task
