"""Live sessions: create one, talk to it over one WebSocket, interrupt its turn, end it.

A session is a task (same id, branch, events, diff, permissions) whose container and agent process
stay alive between prompts; `POST /api/tasks/{id}/messages` reaches its live agent too.
"""

from __future__ import annotations

import contextlib
from typing import Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, WebSocket, delete, post, websocket
from litestar.di import NamedDependency
from litestar.exceptions import WebSocketDisconnect
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_202_ACCEPTED

from aicode.auth.models import UserRecord
from aicode.errors import AicodeError, InvalidInputError
from aicode.tasks.controller import After, stream_events, task_out
from aicode.tasks.schemas import SessionCreate, Task
from aicode.tasks.service import TaskService

__all__ = ["SessionController", "SessionStreamController"]

_MAX_PROMPT = 100_000


class _ClientMessage(msgspec.Struct, forbid_unknown_fields=True):
    """What a client sends on a session's WebSocket."""

    type: str  # prompt, interrupt or terminate
    text: str | None = None


class SessionController(Controller):
    tags = ["sessions"]

    @post("/api/workspaces/{workspace_id:uuid}/sessions", status_code=HTTP_201_CREATED)
    async def create(
        self, workspace_id: FromPath[UUID], data: JSONBody[SessionCreate], request: Request[UserRecord, Any, Any],
        task_service: NamedDependency[TaskService],
    ) -> Task:
        """Start a live session: a task whose agent stays alive between prompts (the first prompt is optional)."""
        return task_out(await task_service.submit(request.user, workspace_id, data.as_task(), kind="session"))

    @delete("/api/sessions/{task_id:uuid}", status_code=HTTP_202_ACCEPTED)
    async def terminate(
        self, task_id: FromPath[UUID], request: Request[UserRecord, Any, Any], task_service: NamedDependency[TaskService],
    ) -> Task:
        """End the session the normal way: a running turn is interrupted and committed, its state kept."""
        return task_out(await task_service.terminate(request.user, task_id))

    @post("/api/tasks/{task_id:uuid}/interrupt", status_code=HTTP_202_ACCEPTED)
    async def interrupt(
        self, task_id: FromPath[UUID], request: Request[UserRecord, Any, Any], task_service: NamedDependency[TaskService],
    ) -> Task:
        """Stop the running turn: a session commits it as partial and waits for the next prompt; a task is cancelled."""
        return task_out(await task_service.interrupt(request.user, task_id))


class SessionStreamController(Controller):
    tags = ["sessions"]

    @websocket("/ws/sessions/{task_id:uuid}")
    async def talk(
        self, socket: WebSocket[UserRecord, Any, Any], task_id: FromPath[UUID],
        task_service: NamedDependency[TaskService], after: After = 0,
    ) -> None:
        """Events out (replay after `after`, then live, with `session.idle` when it waits for a prompt);
        `{type: prompt, text}`, `{type: interrupt}` and `{type: terminate}` in. Closes once the session ended."""
        await stream_events(socket, task_service, task_id, after,
                            lambda client: _serve_client(client, task_service, task_id))


async def _serve_client(socket: WebSocket[UserRecord, Any, Any], task_service: TaskService, task_id: UUID) -> None:
    """Each client message acted on in order; a bad one is answered with an error message, not a close."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            raw = await socket.receive_data(mode="text")
            try:
                message = msgspec.json.decode(raw, type=_ClientMessage)
                await _act(socket.user, task_service, task_id, message)
            except msgspec.ValidationError as exc:
                await socket.send_json({"type": "error", "detail": f"not a session message: {exc}"})
            except msgspec.DecodeError:
                await socket.send_json({"type": "error", "detail": "not JSON: send {\"type\": \"prompt\", \"text\": …}"})
            except AicodeError as exc:
                await socket.send_json({"type": "error", "status_code": exc.status_code, "detail": exc.detail})


async def _act(user: UserRecord, task_service: TaskService, task_id: UUID, message: _ClientMessage) -> None:
    if message.type == "prompt":
        text = (message.text or "").strip()
        if not text or len(text) > _MAX_PROMPT or "\x00" in text:
            raise InvalidInputError(f"a prompt needs text (1 to {_MAX_PROMPT} characters, no NUL)")
        await task_service.follow_up(user, task_id, text)
    elif message.type == "interrupt":
        await task_service.interrupt(user, task_id)
    elif message.type == "terminate":
        await task_service.terminate(user, task_id)
    else:
        raise InvalidInputError(f"unknown message type {message.type!r}: use prompt, interrupt or terminate")
