"""Workspace pages: the list with the create form and sync buttons, and one workspace with its tasks."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER

from aicode.auth.models import UserRecord
from aicode.errors import AicodeError
from aicode.tasks.controller import STATUSES
from aicode.tasks.schemas import TaskCreate
from aicode.tasks.service import TaskService
from aicode.web.forms import form_values, parse_form
from aicode.web.repo import DashboardRepo, TaskFilter
from aicode.web.templating import page
from aicode.workspaces.models import WorkspaceRecord
from aicode.workspaces.schemas import WorkspaceCreate
from aicode.workspaces.service import WorkspaceService

__all__ = ["WorkspacePages"]

_WORKSPACE_FIELDS = ("name", "repo_url", "repo_token", "default_branch", "image", "network", "egress_allow")
_LIMIT_FIELDS = ("cpus", "memory_mb", "pids")
_TASK_FIELDS = ("prompt", "base_branch", "model", "max_turns", "max_cost_usd")
TASKS_SHOWN = 100


def _viewer(user: UserRecord) -> UUID | None:
    return None if user.is_admin else user.id


async def _workspace_fields(request: Request[Any, Any, Any]) -> dict[str, Any]:
    values: dict[str, Any] = await form_values(request, _WORKSPACE_FIELDS)
    if "egress_allow" in values:
        values["egress_allow"] = values["egress_allow"].replace(",", " ").split()
    limits = await form_values(request, _LIMIT_FIELDS)
    if limits:
        values["limits"] = limits
    return msgspec.to_builtins(parse_form(values, WorkspaceCreate))


class WorkspacePages(Controller):
    path = "/workspaces"
    include_in_schema = False

    @get("/")
    async def workspaces(self, request: Request[UserRecord, Any, Any],
                         workspace_service: NamedDependency[WorkspaceService]) -> Template:
        return await self._render_list(request, workspace_service)

    @post("/")
    async def create(self, request: Request[UserRecord, Any, Any],
                     workspace_service: NamedDependency[WorkspaceService]) -> Response[Any]:
        """Register the repository; the list then shows it `cloning` until the mirror is ready."""
        try:
            workspace = await workspace_service.create(request.user, await _workspace_fields(request))
        except AicodeError as exc:
            form = dict(await request.form())
            form.pop("repo_token", None)  # a secret is never echoed back into the page
            return await self._render_list(request, workspace_service, status_code=exc.status_code,
                                           create_error=exc.detail, form=form)
        return Redirect(f"/workspaces#ws-{workspace.id}", status_code=HTTP_303_SEE_OTHER)

    @post("/{workspace_id:uuid}/sync")
    async def sync(self, workspace_id: FromPath[UUID], request: Request[UserRecord, Any, Any],
                   workspace_service: NamedDependency[WorkspaceService]) -> Response[Any]:
        """Fetch now; the outcome (ready, or error with the reason) shows in the list."""
        try:
            await workspace_service.sync(request.user, workspace_id)
        except AicodeError as exc:
            if exc.status_code == 404:
                raise
            return await self._render_list(request, workspace_service, status_code=exc.status_code,
                                           sync_error=exc.detail)
        return Redirect(f"/workspaces#ws-{workspace_id}", status_code=HTTP_303_SEE_OTHER)

    @get("/{workspace_id:uuid}")
    async def workspace(
        self, workspace_id: FromPath[UUID], request: Request[UserRecord, Any, Any],
        workspace_service: NamedDependency[WorkspaceService], dashboard: NamedDependency[DashboardRepo],
        status: FromQuery[str | None] = None, who: FromQuery[str | None] = None,
        q: FromQuery[str | None] = None,
    ) -> Template:
        workspace = await workspace_service.get(request.user, workspace_id)
        found = TaskFilter(status=status if status in STATUSES else None, username=who, text=q)
        return await self._render_workspace(request, workspace, dashboard, found)

    @post("/{workspace_id:uuid}/tasks")
    async def submit(
        self, workspace_id: FromPath[UUID], request: Request[UserRecord, Any, Any],
        workspace_service: NamedDependency[WorkspaceService], task_service: NamedDependency[TaskService],
        dashboard: NamedDependency[DashboardRepo],
    ) -> Response[Any]:
        """Queue the task and open its page, where it streams live."""
        workspace = await workspace_service.get(request.user, workspace_id)
        values = await form_values(request, _TASK_FIELDS)
        try:
            data = parse_form(values, TaskCreate)
            task = await task_service.submit(request.user, workspace.id, msgspec.to_builtins(data))
        except AicodeError as exc:
            return await self._render_workspace(request, workspace, dashboard, TaskFilter(),
                                                status_code=exc.status_code, task_error=exc.detail, form=values)
        return Redirect(f"/tasks/{task.id}", status_code=HTTP_303_SEE_OTHER)

    @staticmethod
    async def _render_list(request: Request[UserRecord, Any, Any], workspace_service: WorkspaceService,
                           *, status_code: int = 200, **context: Any) -> Template:
        workspaces = await workspace_service.list(request.user)
        return page("workspaces.html", status_code=status_code, nav="workspaces", workspaces=workspaces,
                    network_choices=workspace_service.network_choices(request.user), **context)

    @staticmethod
    async def _render_workspace(
        request: Request[UserRecord, Any, Any], workspace: WorkspaceRecord, dashboard: DashboardRepo,
        found: TaskFilter, *, status_code: int = 200, **context: Any,
    ) -> Template:
        viewer = _viewer(request.user)
        tasks = await dashboard.in_workspace(viewer, workspace.id, found, limit=TASKS_SHOWN)
        authors = await dashboard.authors(viewer, workspace.id)
        return page("workspace.html", status_code=status_code, nav="workspaces", workspace=workspace, tasks=tasks,
                    authors=authors, filters=found, statuses=STATUSES, tasks_shown=TASKS_SHOWN, **context)
