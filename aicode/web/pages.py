"""The overview (running now, queue, recent tasks, 30-day usage chart) and the live task (or session) page."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER

from aicode.access.policy import Action, listing_scope, permits
from aicode.agents.registry import UnknownAgent, driver_for
from aicode.auth.models import UserRecord
from aicode.containers.image_build import ImageBuilds
from aicode.credentials.service import CredentialService
from aicode.errors import AicodeError, InvalidInputError, NotFoundError
from aicode.forges.models import ForgeSettings
from aicode.tasks.models import TERMINAL_STATUSES, TaskStatus
from aicode.tasks.queue_repo import TaskQueueRepo
from aicode.tasks.service import TaskService
from aicode.web.charts import usage_chart
from aicode.web.first_run import first_run
from aicode.web.forms import form_values
from aicode.web.repo import DashboardRepo
from aicode.web.templating import page
from aicode.web.turn_clock import turn_clock
from aicode.web.workspaces import TASK_FIELDS, submit_task_form
from aicode.workspaces.service import WorkspaceService

__all__ = ["OverviewPages", "TaskPages"]

USAGE_DAYS = 30
RECENT_TASKS = 12


class OverviewPages(Controller):
    include_in_schema = False

    @get("/")
    async def overview(self, request: Request[UserRecord, Any, Any], dashboard: NamedDependency[DashboardRepo],
                       task_queue: NamedDependency[TaskQueueRepo], image_builds: NamedDependency[ImageBuilds],
                       credential_service: NamedDependency[CredentialService],
                       workspace_service: NamedDependency[WorkspaceService]) -> Template:
        return await self._render(request, dashboard, task_queue, image_builds, credential_service,
                                  workspace_service)

    @post("/tasks")
    async def new_task(self, request: Request[UserRecord, Any, Any], dashboard: NamedDependency[DashboardRepo],
                       task_queue: NamedDependency[TaskQueueRepo], image_builds: NamedDependency[ImageBuilds],
                       credential_service: NamedDependency[CredentialService],
                       workspace_service: NamedDependency[WorkspaceService],
                       task_service: NamedDependency[TaskService]) -> Response[Any]:
        """The overview's "New task" form: the same task as a workspace page's form, its workspace picked."""
        values = await form_values(request, (*TASK_FIELDS, "workspace_id"))
        chosen = values.pop("workspace_id", "")
        try:
            task = await submit_task_form(request.user, _workspace_id(chosen), values, task_service)
        except AicodeError as exc:
            return await self._render(request, dashboard, task_queue, image_builds, credential_service,
                                      workspace_service, status_code=exc.status_code, task_error=exc.detail,
                                      form={**values, "workspace_id": chosen})
        return Redirect(f"/tasks/{task.id}", status_code=HTTP_303_SEE_OTHER)

    @staticmethod
    async def _render(request: Request[UserRecord, Any, Any], dashboard: DashboardRepo, task_queue: TaskQueueRepo,
                      image_builds: ImageBuilds, credentials: CredentialService, workspaces: WorkspaceService,
                      *, status_code: int = 200, **context: Any) -> Template:
        viewer = listing_scope(request.user)
        supervisor = request.app.state.supervisor
        return page(
            "overview.html", nav="overview", status_code=status_code,
            running=await dashboard.recent(viewer, limit=50, status=TaskStatus.RUNNING),
            recent=await dashboard.recent(viewer, limit=RECENT_TASKS),
            chart=usage_chart(await dashboard.usage(viewer, days=USAGE_DAYS)), usage_days=USAGE_DAYS,
            queued=await task_queue.count_queued(), slots_busy=supervisor.running,
            slots=request.app.state.settings.max_concurrent_tasks,
            start=await first_run(request.user, image_builds, credentials, workspaces, dashboard), **context,
        )


def _workspace_id(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise InvalidInputError("workspace: choose the workspace the task runs in") from None


class TaskPages(Controller):
    include_in_schema = False

    @get("/tasks/{task_id:uuid}")
    async def task(
        self, task_id: FromPath[UUID], request: Request[UserRecord, Any, Any],
        task_service: NamedDependency[TaskService], dashboard: NamedDependency[DashboardRepo],
        workspace_service: NamedDependency[WorkspaceService],
    ) -> Template:
        """The page's frame; static/task.js fills in the event feed, live stats and the diff (and
        static/session.js runs a live session's conversation box)."""
        task = await task_service.get(request.user, task_id)
        row = await dashboard.one(task.id)
        if row is None:
            raise NotFoundError(f"no task with id {task_id}")
        workspace = await workspace_service.get(request.user, task.workspace_id)
        role = await workspace_service.role(request.user, workspace.id)
        admin = request.user.is_admin
        may_publish = permits(role, Action.PUBLISH, admin=admin)
        # A live session's box: prompts for those who may run tasks; interrupt and end for those who may
        # stop this one (its author, or whoever may stop anyone's).
        stop = Action.CANCEL_OWN if task.user_id == request.user.id else Action.CANCEL_ANY
        try:
            default_model = driver_for(task.agent).default_model
        except UnknownAgent:  # a task from a server that had a driver this one lacks
            default_model = None
        clock = turn_clock(await dashboard.turn_marks(task.id), session=task.kind == "session",
                           first_prompt=bool(task.prompt.strip()))
        return page("task.html", nav="workspaces", task=task, row=row, terminal=task.status in TERMINAL_STATUSES,
                    clock=clock, now=datetime.now(UTC),
                    default_model=default_model, can_run=permits(role, Action.RUN, admin=admin),
                    turns=await task_service.turns(request.user, task.id),
                    can_stop=permits(role, stop, admin=admin),
                    can_push=may_publish and not workspace.repo_url.startswith("/"),
                    forge=ForgeSettings.from_json(workspace.forge) if may_publish else None)
