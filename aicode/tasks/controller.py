"""HTTP and WebSocket endpoints for tasks: submit, read, follow up, cancel, stream events, review."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, WebSocket, get, post, websocket
from litestar.di import NamedDependency
from litestar.exceptions import WebSocketDisconnect
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage
from litestar.status_codes import HTTP_202_ACCEPTED

from aicode.auth.models import UserRecord
from aicode.errors import AicodeError
from aicode.http.heartbeat import with_heartbeats
from aicode.tasks.events import WireEvent
from aicode.tasks.models import STATUSES, TaskRecord
from aicode.tasks.schemas import FileEntry, FollowUp, Task, TaskCreate, TaskOrigin, TaskPullRequest
from aicode.tasks.service import TaskService

__all__ = ["TaskController", "TaskStreamController", "stream_events", "task_out"]

# Event seqs are PostgreSQL bigints: a larger number is a 400 here, not an overflow in the database.
MAX_SEQ = 2**63 - 1
After = Annotated[int, QueryParameter(ge=0, le=MAX_SEQ, description="only events with seq greater than this")]
TurnSha = Annotated[str | None, QueryParameter(
    pattern="^([0-9a-f]{40}|[0-9a-f]{64})$", description="one turn's commit (a `git.commit` event's `commit`): only its changes")]
TurnNumber = Annotated[int | None, QueryParameter(
    ge=1, le=2**31 - 1, description="the Nth turn that committed, from 1: only its changes")]


def task_out(task: TaskRecord) -> Task:
    fields = {name: getattr(task, name) for name in Task.__struct_fields__}
    fields["pull_request"] = msgspec.convert(task.pull_request, TaskPullRequest) if task.pull_request else None
    fields["origin"] = msgspec.convert(task.origin, TaskOrigin) if task.origin else None
    return Task(**fields)


# Reverse proxies close connections that stay silent for about a minute; an agent can think longer.
SSE_HEARTBEAT_S = 15.0


def _sse(events: AsyncIterator[WireEvent]) -> AsyncIterator[ServerSentEventMessage]:
    async def messages() -> AsyncIterator[ServerSentEventMessage]:
        async for event in with_heartbeats(events, SSE_HEARTBEAT_S):
            if event is None:
                yield ServerSentEventMessage(comment="heartbeat")
            else:
                # A live-only event has no seq: no id, so Last-Event-ID keeps pointing at the last stored one.
                yield ServerSentEventMessage(data=event.json, event=event.type,
                                             id=None if event.ephemeral else event.seq)

    return messages()


class TaskController(Controller):
    tags = ["tasks"]

    @post("/api/workspaces/{workspace_id:uuid}/tasks", status_code=HTTP_202_ACCEPTED)
    async def submit(
        self, workspace_id: FromPath[UUID], data: JSONBody[TaskCreate], request: Request[UserRecord, Any, Any],
        task_service: NamedDependency[TaskService],
    ) -> Task:
        """Queue a task; it answers at once (202) and runs when a slot is free."""
        return task_out(await task_service.submit(request.user, workspace_id, data))

    @get("/api/tasks")
    async def list_tasks(
        self, request: Request[UserRecord, Any, Any], task_service: NamedDependency[TaskService],
        workspace_id: FromQuery[UUID | None] = None,
        status: Annotated[str | None, QueryParameter(pattern="^(" + "|".join(STATUSES) + ")$")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> list[Task]:
        """Tasks you may see, newest first."""
        tasks = await task_service.list(request.user, workspace_id=workspace_id, status=status, limit=limit)
        return [task_out(task) for task in tasks]

    @get("/api/tasks/{task_id:uuid}")
    async def get_task(
        self, task_id: FromPath[UUID], request: Request[UserRecord, Any, Any],
        task_service: NamedDependency[TaskService],
    ) -> Task:
        return task_out(await task_service.get(request.user, task_id))

    @post("/api/tasks/{task_id:uuid}/messages", status_code=HTTP_202_ACCEPTED)
    async def follow_up(
        self, task_id: FromPath[UUID], data: JSONBody[FollowUp], request: Request[UserRecord, Any, Any],
        task_service: NamedDependency[TaskService],
    ) -> Task:
        """Run another turn that resumes the agent's session on the same branch."""
        return task_out(await task_service.follow_up(request.user, task_id, data.prompt, agent=data.agent))

    @post("/api/tasks/{task_id:uuid}/cancel", status_code=HTTP_202_ACCEPTED)
    async def cancel(
        self, task_id: FromPath[UUID], request: Request[UserRecord, Any, Any],
        task_service: NamedDependency[TaskService],
    ) -> Task:
        """Stop the task: a queued one never starts; a running one stops within seconds, its work committed."""
        return task_out(await task_service.cancel(request.user, task_id))

    @get("/api/tasks/{task_id:uuid}/events")
    async def events(
        self, task_id: FromPath[UUID], request: Request[UserRecord, Any, Any],
        task_service: NamedDependency[TaskService], after: After = 0,
        limit: Annotated[int, QueryParameter(ge=1, le=5000)] = 1000,
        before: Annotated[int | None, QueryParameter(
            ge=1, le=MAX_SEQ, description="only events with seq lower than this")] = None,
        last: Annotated[int | None, QueryParameter(
            ge=1, le=5000, description="the latest `last` events (of those the other filters keep) instead of the first")
        ] = None,
    ) -> Response[Any]:
        """The events after `after` as JSON; with `Accept: text/event-stream`, an SSE stream (replay, then live).

        `last=N` answers the newest N events, oldest first, so a page can open a long task at its end
        and page backwards with `before`.
        """
        if "text/event-stream" in request.headers.get("accept", ""):
            last_event_id = request.headers.get("last-event-id", "")
            if last_event_id.isdigit():
                after = max(after, int(last_event_id))
            stream = await task_service.follow(request.user, task_id, after)
            # retry: a browser's EventSource reconnects after 1 s (not its default 3 s), sending Last-Event-ID.
            return ServerSentEvent(_sse(stream), retry_duration=1000,
                                   headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
        events = await task_service.events(request.user, task_id, after=after, before=before,
                                           limit=last or limit, latest=last is not None)
        return Response([event.to_json() for event in events])

    @get("/api/tasks/{task_id:uuid}/diff", media_type="text/x-diff")
    async def diff(
        self, task_id: FromPath[UUID], request: Request[UserRecord, Any, Any],
        task_service: NamedDependency[TaskService], commit: TurnSha = None, turn: TurnNumber = None,
    ) -> str:
        """The task's changes as a patch, base commit to head commit; with `commit` or `turn`, only what
        that turn changed (the turn before's commit, or the base, to it). 404 for a commit that is not one
        of the task's turn commits."""
        return await task_service.diff(request.user, task_id, commit=commit, turn=turn)

    @get("/api/tasks/{task_id:uuid}/files")
    async def files(
        self, task_id: FromPath[UUID], request: Request[UserRecord, Any, Any],
        task_service: NamedDependency[TaskService], commit: TurnSha = None, turn: TurnNumber = None,
    ) -> list[FileEntry]:
        """The changed files with their status and line counts; `commit` and `turn` as for /diff."""
        changes = await task_service.files(request.user, task_id, commit=commit, turn=turn)
        return [FileEntry(path=c.path, status=c.status, additions=c.additions, deletions=c.deletions) for c in changes]

    @get("/api/tasks/{task_id:uuid}/patch", media_type="application/mbox")
    async def patch_series(
        self, task_id: FromPath[UUID], request: Request[UserRecord, Any, Any],
        task_service: NamedDependency[TaskService],
    ) -> str:
        """The task's commits as an mbox patch series, as `git format-patch --stdout base..head` writes it:
        `git am --keep-non-patch` applies it with author, date and message kept."""
        return await task_service.patch_series(request.user, task_id)


class TaskStreamController(Controller):
    tags = ["tasks"]

    @websocket("/ws/tasks/{task_id:uuid}")
    async def follow(
        self, socket: WebSocket[UserRecord, Any, Any], task_id: FromPath[UUID],
        task_service: NamedDependency[TaskService], after: After = 0,
    ) -> None:
        """One JSON event per message: replay after `after`, then live; closes once the task has ended."""
        await stream_events(socket, task_service, task_id, after, _until_disconnect)


async def stream_events(
    socket: WebSocket[UserRecord, Any, Any], task_service: TaskService, task_id: UUID, after: int,
    listen: Callable[[WebSocket[UserRecord, Any, Any]], Coroutine[Any, Any, None]],
) -> None:
    """A task's events over a WebSocket (replay after `after`, then live), while `listen` takes what the client
    sends, until either ends; closed normally once the task has ended and every event went out."""
    await socket.accept()
    try:
        stream = await task_service.follow(socket.user, task_id, after)
    except AicodeError as exc:
        await socket.send_json({"status_code": exc.status_code, "detail": exc.detail})
        await socket.close(code=4000 + exc.status_code, reason=exc.detail[:120])
        return
    sender = asyncio.create_task(_send_all(socket, stream))
    listener = asyncio.create_task(listen(socket))
    done, pending = await asyncio.wait({sender, listener}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    if sender in done and sender.exception() is None:
        with contextlib.suppress(Exception):
            await socket.close(code=1000)


async def _send_all(socket: WebSocket[Any, Any, Any], stream: AsyncIterator[WireEvent]) -> None:
    async for event in stream:
        await socket.send_text(event.json)


async def _until_disconnect(socket: WebSocket[Any, Any, Any]) -> None:
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await socket.receive_data(mode="text")
