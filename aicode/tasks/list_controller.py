"""`GET /api/tasks/changes`: a Server-Sent Events stream of task list changes (a task queued, its status
changed) for the tasks the caller may see, so that pages (and scripts) keep their lists current without
polling."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import Parameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from aicode.auth.models import UserRecord
from aicode.http.heartbeat import with_heartbeats
from aicode.tasks.models import TaskRecord
from aicode.tasks.service import TaskService

__all__ = ["TaskListController"]

_HEARTBEAT_S = 15.0

WorkspaceFilter = Annotated[UUID | None, Parameter(description="Only this workspace's tasks")]
StreamTimeout = Annotated[int | None, Parameter(ge=1, le=86400, description=(
    "End the stream after this many seconds (as a Kubernetes watch's timeoutSeconds); a client reconnects"))]


def _change(task: TaskRecord, status: str) -> str:
    return json.dumps({"id": str(task.id), "workspace_id": str(task.workspace_id), "status": status,
                       "kind": task.kind, "user_id": str(task.user_id), "turn_user_id": str(task.turn_user_id)},
                      separators=(",", ":"))


class TaskListController(Controller):
    tags = ["tasks"]

    @get("/api/tasks/changes")
    async def changes(self, request: Request[UserRecord, Any, Any], task_service: NamedDependency[TaskService],
                      workspace_id: WorkspaceFilter = None, timeout_s: StreamTimeout = None) -> ServerSentEvent:
        """First a `listening` event once subscribed, then one `task` event per change, `{id, workspace_id, status,
        kind, user_id, turn_user_id}` (no replay: read the list after `listening`). Heartbeat comments every 15 s."""
        changes = task_service.list_changes(request.user)

        async def messages() -> AsyncIterator[ServerSentEventMessage]:
            try:
                async with asyncio.timeout(timeout_s):
                    async for message in followed():
                        yield message
            except TimeoutError:
                return

        async def followed() -> AsyncIterator[ServerSentEventMessage]:
            listening = False
            async for item in with_heartbeats(changes, _HEARTBEAT_S):
                if item is None and not listening:
                    # Subscribed: no change from now on is missed; a client may read its list now.
                    listening = True
                    yield ServerSentEventMessage(event="listening", data="{}")
                    continue
                if item is None:
                    yield ServerSentEventMessage(comment="heartbeat")
                    continue
                task, status = item
                if workspace_id is None or task.workspace_id == workspace_id:
                    yield ServerSentEventMessage(data=_change(task, status), event="task")

        return ServerSentEvent(messages(), headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
