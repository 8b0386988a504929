"""Rendering one workspace's page: its task form (with the agent picker), tasks, members, team keys,
notification webhooks and forge settings; every handler of that page answers with it, with the outcome of
what it did."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.response import Template

from aicode.access.members import MemberService
from aicode.access.policy import Action, listing_scope, permits
from aicode.agents.catalog import AgentCatalog
from aicode.auth.models import UserRecord
from aicode.credentials.service import CredentialService
from aicode.tasks.models import STATUSES
from aicode.web.agent_picker import AgentPicker
from aicode.web.model_keys import team_keys
from aicode.web.repo import DashboardRepo, TaskFilter
from aicode.web.templating import page
from aicode.workspaces.models import WorkspaceRecord
from aicode.workspaces.service import WorkspaceService

__all__ = ["TASKS_SHOWN", "WorkspacePage"]

TASKS_SHOWN = 100


class WorkspacePage:
    def __init__(self, dashboard: DashboardRepo, members: MemberService, catalog: AgentCatalog,
                 credentials: CredentialService, workspaces: WorkspaceService) -> None:
        self._dashboard = dashboard
        self._workspaces = workspaces
        self._members = members
        self._catalog = catalog
        self._credentials = credentials

    async def render(
        self, request: Request[UserRecord, Any, Any], workspace: WorkspaceRecord, found: TaskFilter | None = None,
        *, status_code: int = 200, form: dict[str, Any] | None = None, **context: Any,
    ) -> Template:
        """The page as `request.user` sees it; `form`: a task form to show again (after an error)."""
        viewer = listing_scope(request.user)
        found = found or TaskFilter()
        tasks = await self._dashboard.in_workspace(viewer, workspace.id, found, limit=TASKS_SHOWN)
        authors = await self._dashboard.authors(viewer, workspace.id)
        members = await self._members.list(request.user, workspace.id)
        role = next((m.role for m in members if m.user_id == request.user.id), None)
        admin = request.user.is_admin
        can_run = permits(role, Action.RUN, admin=admin)
        can_manage = permits(role, Action.MANAGE, admin=admin)
        picker = None
        if can_run:
            picker = await AgentPicker.build(self._catalog, self._credentials, request.user.id, workspace,
                                             wanted=(form or {}).get("agent"))
        return page("workspace.html", status_code=status_code, nav="workspaces", workspace=workspace, tasks=tasks,
                    authors=authors, filters=found, statuses=STATUSES, tasks_shown=TASKS_SHOWN, members=members,
                    role=role, can_run=can_run, can_manage=can_manage,
                    picker=picker, keys=await team_keys(self._credentials, workspace.id), form=form,
                    site_url=request.app.state.settings.site_url, can_notify=permits(role, Action.NOTIFY, admin=admin),
                    notify_hooks=await request.app.state.notification_service.list_for_workspace(
                        request.user, workspace.id),
                    task_count=await self._dashboard.count_in_workspace(workspace.id) if can_manage else None,
                    network_choices=self._workspaces.network_choices(request.user), **context)
