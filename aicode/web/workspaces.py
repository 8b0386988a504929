"""Workspace pages: the list with the create form and sync buttons, and one workspace with its task (and
session) form, tasks, members, team model keys, notification webhooks and forge settings."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER

from aicode.access.members import MemberService
from aicode.access.policy import Action, Role
from aicode.auth.models import UserRecord
from aicode.credentials.service import CredentialService
from aicode.errors import AicodeError, InvalidInputError
from aicode.forges.hooks import ForgeHooks
from aicode.http.urls import redact_userinfo, without_userinfo
from aicode.notifications.service import NotificationService
from aicode.tasks.models import STATUSES, TaskRecord
from aicode.tasks.schemas import SessionCreate, TaskCreate
from aicode.tasks.service import TaskService
from aicode.web.agent_picker import checked_agent
from aicode.web.forms import form_values, parse_form
from aicode.web.model_keys import checked_provider, submitted_key
from aicode.web.notification_forms import submitted_hook
from aicode.web.repo import TaskFilter
from aicode.web.shown_once import ShownOnce
from aicode.web.templating import page
from aicode.web.workspace_page import WorkspacePage
from aicode.workspaces.schemas import WorkspaceCreate, WorkspaceUpdate
from aicode.workspaces.service import WorkspaceService

__all__ = ["TASK_FIELDS", "WorkspacePages", "submit_task_form"]

_WORKSPACE_FIELDS = ("name", "repo_url", "repo_token", "default_branch", "image", "network", "egress_allow")
_LIMIT_FIELDS = ("cpus", "memory_mb", "pids")
_SETTINGS_FIELDS = ("name", "default_branch", "image", "network", "repo_token")
TASK_FIELDS = ("prompt", "agent", "base_branch", "model", "max_turns", "max_cost_usd")


async def _workspace_request(request: Request[Any, Any, Any]) -> WorkspaceCreate:
    values: dict[str, Any] = await form_values(request, _WORKSPACE_FIELDS)
    if "egress_allow" in values:
        values["egress_allow"] = values["egress_allow"].replace(",", " ").split()
    limits = await form_values(request, _LIMIT_FIELDS)
    if limits:
        values["limits"] = limits
    return parse_form(values, WorkspaceCreate)


async def submit_task_form(user: UserRecord, workspace_id: UUID, values: dict[str, Any], task_service: TaskService,
                           *, session: bool = False) -> TaskRecord:
    """Queue the task (or start the session) a task form describes; AicodeError says what was wrong."""
    values["agent"] = checked_agent(values.get("agent"))
    if session:
        wanted = parse_form(values, SessionCreate).as_task()
        return await task_service.submit(user, workspace_id, wanted, kind="session")
    return await task_service.submit(user, workspace_id, parse_form(values, TaskCreate))


class WorkspacePages(Controller):
    path = "/workspaces"
    include_in_schema = False

    @get("/")
    async def workspaces(self, request: Request[UserRecord, Any, Any],
                         workspace_service: NamedDependency[WorkspaceService],
                         deleted: FromQuery[str | None] = None) -> Template:
        notice = f"The workspace {deleted[:100]} was deleted." if deleted else None
        return await self._render_list(request, workspace_service, notice=notice)

    @post("/")
    async def create(self, request: Request[UserRecord, Any, Any],
                     workspace_service: NamedDependency[WorkspaceService]) -> Response[Any]:
        """Register the repository; the list then shows it `cloning` until the mirror is ready."""
        try:
            workspace = await workspace_service.create(request.user, await _workspace_request(request))
        except AicodeError as exc:
            form = dict(await request.form())
            form.pop("repo_token", None)  # a secret is never echoed back into the page
            # Nor is one embedded in the URL (https://user:token@host/…), in the field or in the message.
            raw_url = str(form.get("repo_url", ""))
            form["repo_url"] = without_userinfo(raw_url)
            detail = redact_userinfo(exc.detail.replace(raw_url.strip(), form["repo_url"]) if raw_url else exc.detail)
            return await self._render_list(request, workspace_service, status_code=exc.status_code,
                                           create_error=detail, form=form)
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
        workspace_service: NamedDependency[WorkspaceService], workspace_page: NamedDependency[WorkspacePage],
        shown_once: NamedDependency[ShownOnce], status: FromQuery[str | None] = None,
        who: FromQuery[str | None] = None,
        q: FromQuery[str | None] = None, saved: FromQuery[str | None] = None,
    ) -> Response[Any]:
        """The workspace; right after a new webhook secret was made, that secret, this once."""
        workspace = await workspace_service.get(request.user, workspace_id)
        found = TaskFilter(status=status if status in STATUSES else None, username=who, text=q)
        made = shown_once.take(request, user_id=request.user.id)
        rendered = await workspace_page.render(request, workspace, found, webhook_secret=made.get("webhook_secret"),
                                               settings_notice="Settings saved." if saved == "settings" else None)
        return shown_once.forget(rendered, request, path=f"/workspaces/{workspace.id}")

    @post("/{workspace_id:uuid}/settings")
    async def change_settings(
        self, workspace_id: FromPath[UUID], request: Request[UserRecord, Any, Any],
        workspace_service: NamedDependency[WorkspaceService], workspace_page: NamedDependency[WorkspacePage],
    ) -> Response[Any]:
        """Owners: name, default branch, image, network, allowed hosts, limits, repository token (fields left empty
        stay as they are; the setup command is with the forge settings)."""
        workspace = await workspace_service.get(request.user, workspace_id)
        values: dict[str, Any] = await form_values(request, _SETTINGS_FIELDS)
        values["egress_allow"] = str((await request.form()).get("egress_allow", "")).replace(",", " ").split()
        limits = await form_values(request, _LIMIT_FIELDS)
        if limits:
            values["limits"] = limits
        try:
            await workspace_service.update(request.user, workspace.id, parse_form(values, WorkspaceUpdate))
        except AicodeError as exc:
            return await workspace_page.render(request, workspace, status_code=exc.status_code,
                                               settings_error=exc.detail)
        return Redirect(f"/workspaces/{workspace.id}?saved=settings#settings-head", status_code=HTTP_303_SEE_OTHER)

    @post("/{workspace_id:uuid}/delete")
    async def delete(
        self, workspace_id: FromPath[UUID], request: Request[UserRecord, Any, Any],
        workspace_service: NamedDependency[WorkspaceService], workspace_page: NamedDependency[WorkspacePage],
    ) -> Response[Any]:
        """Owners, typing the workspace's name to confirm; then back to the list, which says it is gone."""
        workspace = await workspace_service.get(request.user, workspace_id)
        typed = str((await request.form()).get("confirm_name", "")).strip()
        try:
            if typed != workspace.name:
                raise InvalidInputError(f"type the workspace's name, {workspace.name}, to delete it")
            await workspace_service.delete(request.user, workspace.id)
        except AicodeError as exc:
            return await workspace_page.render(request, workspace, status_code=exc.status_code,
                                               delete_error=exc.detail)
        return Redirect(f"/workspaces?{urlencode({'deleted': workspace.name})}", status_code=HTTP_303_SEE_OTHER)

    @post("/{workspace_id:uuid}/tasks")
    async def submit(
        self, workspace_id: FromPath[UUID], request: Request[UserRecord, Any, Any],
        workspace_service: NamedDependency[WorkspaceService], task_service: NamedDependency[TaskService],
        workspace_page: NamedDependency[WorkspacePage],
    ) -> Response[Any]:
        """Queue the task and open its page, where it streams live."""
        return await self._start(request, workspace_id, workspace_service, task_service, workspace_page,
                                 session=False)

    @post("/{workspace_id:uuid}/sessions")
    async def start_session(
        self, workspace_id: FromPath[UUID], request: Request[UserRecord, Any, Any],
        workspace_service: NamedDependency[WorkspaceService], task_service: NamedDependency[TaskService],
        workspace_page: NamedDependency[WorkspacePage],
    ) -> Response[Any]:
        """Start a live session (the task form's fields, its prompt optional) and open its page, the conversation."""
        return await self._start(request, workspace_id, workspace_service, task_service, workspace_page,
                                 session=True)

    @staticmethod
    async def _start(request: Request[UserRecord, Any, Any], workspace_id: UUID, workspace_service: WorkspaceService,
                     task_service: TaskService, workspace_page: WorkspacePage, *, session: bool) -> Response[Any]:
        workspace = await workspace_service.get(request.user, workspace_id)
        values = await form_values(request, TASK_FIELDS)
        try:
            task = await submit_task_form(request.user, workspace.id, values, task_service, session=session)
        except AicodeError as exc:
            return await workspace_page.render(request, workspace, status_code=exc.status_code,
                                               task_error=exc.detail, form=values)
        return Redirect(f"/tasks/{task.id}", status_code=HTTP_303_SEE_OTHER)

    @post("/{workspace_id:uuid}/members")
    async def put_member(
        self, workspace_id: FromPath[UUID], request: Request[UserRecord, Any, Any],
        workspace_service: NamedDependency[WorkspaceService], workspace_page: NamedDependency[WorkspacePage],
        member_service: NamedDependency[MemberService],
    ) -> Response[Any]:
        """Add a member or change a role (owners); the page shows the outcome."""
        workspace = await workspace_service.get(request.user, workspace_id)
        values = await form_values(request, ("username", "role"))
        try:
            role = Role(values.get("role", ""))
            await member_service.put(request.user, workspace.id, values.get("username", ""), role)
        except ValueError:
            return await workspace_page.render(request, workspace, status_code=400,
                                               members_error="choose owner, editor or viewer")
        except AicodeError as exc:
            return await workspace_page.render(request, workspace, status_code=exc.status_code,
                                               members_error=exc.detail)
        return Redirect(f"/workspaces/{workspace.id}#members-head", status_code=HTTP_303_SEE_OTHER)

    @post("/{workspace_id:uuid}/members/remove")
    async def remove_member(
        self, workspace_id: FromPath[UUID], request: Request[UserRecord, Any, Any],
        workspace_service: NamedDependency[WorkspaceService], workspace_page: NamedDependency[WorkspacePage],
        member_service: NamedDependency[MemberService],
    ) -> Response[Any]:
        """Remove a member (owners; anyone may leave)."""
        workspace = await workspace_service.get(request.user, workspace_id)
        username = (await form_values(request, ("username",))).get("username", "")
        try:
            await member_service.remove(request.user, workspace.id, username)
        except AicodeError as exc:
            return await workspace_page.render(request, workspace, status_code=exc.status_code,
                                               members_error=exc.detail)
        if username.lower() == request.user.username.lower():
            return Redirect("/workspaces", status_code=HTTP_303_SEE_OTHER)
        return Redirect(f"/workspaces/{workspace.id}#members-head", status_code=HTTP_303_SEE_OTHER)

    @post("/{workspace_id:uuid}/forge")
    async def forge(
        self, workspace_id: FromPath[UUID], request: Request[UserRecord, Any, Any],
        workspace_service: NamedDependency[WorkspaceService], workspace_page: NamedDependency[WorkspacePage],
    ) -> Response[Any]:
        """Save the forge, auto pull request and setup command (owners)."""
        workspace = await workspace_service.get(request.user, workspace_id)
        values = await form_values(request, ("kind", "repo", "api_url", "token", "trigger", "auto_pr", "setup"))
        forge = {key: values[key] for key in ("kind", "repo", "api_url", "token", "trigger") if key in values}
        try:
            update = parse_form({"forge": forge if values.get("kind") else None, "auto_pr": values.get("auto_pr"),
                                 "setup": values.get("setup", "")}, WorkspaceUpdate)
            await workspace_service.update(request.user, workspace.id, update)
        except AicodeError as exc:
            return await workspace_page.render(request, workspace, status_code=exc.status_code,
                                               forge_error=exc.detail)
        return Redirect(f"/workspaces/{workspace.id}#forge-head", status_code=HTTP_303_SEE_OTHER)

    @post("/{workspace_id:uuid}/webhook")
    async def webhook(
        self, workspace_id: FromPath[UUID], request: Request[UserRecord, Any, Any],
        workspace_service: NamedDependency[WorkspaceService], workspace_page: NamedDependency[WorkspacePage],
        forge_hooks: NamedDependency[ForgeHooks], shown_once: NamedDependency[ShownOnce],
    ) -> Response[Any]:
        """A new webhook secret, shown this once by the workspace page the answer leads to (owners)."""
        workspace = await workspace_service.get(request.user, workspace_id)
        try:
            setup = await forge_hooks.set_up_webhook(request.user, workspace.id)
        except AicodeError as exc:
            return await workspace_page.render(request, workspace, status_code=exc.status_code,
                                               forge_error=exc.detail)
        here = f"/workspaces/{workspace.id}"
        return shown_once.keep(Redirect(f"{here}#forge-head", status_code=HTTP_303_SEE_OTHER), request,
                               user_id=request.user.id, path=here, webhook_secret=setup.secret)

    @post("/{workspace_id:uuid}/credentials/{provider:str}")
    async def store_team_key(
        self, workspace_id: FromPath[UUID], provider: FromPath[str], request: Request[UserRecord, Any, Any],
        workspace_service: NamedDependency[WorkspaceService], workspace_page: NamedDependency[WorkspacePage],
        credential_service: NamedDependency[CredentialService],
    ) -> Response[Any]:
        """Store the workspace's team key for a provider (owners); write-only, as on the settings page."""
        workspace = await workspace_service.get(request.user, workspace_id, Action.MANAGE)
        provider = checked_provider(provider)
        try:
            kind, secret = await submitted_key(request, provider)
            await credential_service.store_team(workspace.id, provider, kind, secret, request.user)
        except AicodeError as exc:
            return await workspace_page.render(request, workspace, status_code=exc.status_code,
                                               key_errors={provider: exc.detail})
        return Redirect(f"/workspaces/{workspace.id}#team-keys-head", status_code=HTTP_303_SEE_OTHER)

    @post("/{workspace_id:uuid}/credentials/{provider:str}/remove")
    async def remove_team_key(
        self, workspace_id: FromPath[UUID], provider: FromPath[str], request: Request[UserRecord, Any, Any],
        workspace_service: NamedDependency[WorkspaceService], workspace_page: NamedDependency[WorkspacePage],
        credential_service: NamedDependency[CredentialService],
    ) -> Response[Any]:
        workspace = await workspace_service.get(request.user, workspace_id, Action.MANAGE)
        provider = checked_provider(provider)
        try:
            await credential_service.remove_team(workspace.id, provider, request.user)
        except AicodeError as exc:  # already removed (another tab)
            return await workspace_page.render(request, workspace, status_code=exc.status_code,
                                               key_errors={provider: exc.detail})
        return Redirect(f"/workspaces/{workspace.id}#team-keys-head", status_code=HTTP_303_SEE_OTHER)

    @post("/{workspace_id:uuid}/notifications")
    async def add_notification(
        self, workspace_id: FromPath[UUID], request: Request[UserRecord, Any, Any],
        workspace_service: NamedDependency[WorkspaceService], workspace_page: NamedDependency[WorkspacePage],
        notification_service: NamedDependency[NotificationService],
    ) -> Response[Any]:
        """Add a webhook called for every task of the workspace (owners)."""
        workspace = await workspace_service.get(request.user, workspace_id, Action.NOTIFY)
        try:
            await notification_service.create_for_workspace(request.user, workspace.id, await submitted_hook(request))
        except AicodeError as exc:
            return await workspace_page.render(request, workspace, status_code=exc.status_code,
                                               notify_error=exc.detail)
        return Redirect(f"/workspaces/{workspace.id}#notifications-head", status_code=HTTP_303_SEE_OTHER)

    @post("/{workspace_id:uuid}/notifications/{hook_id:uuid}/test")
    async def test_notification(
        self, workspace_id: FromPath[UUID], hook_id: FromPath[UUID], request: Request[UserRecord, Any, Any],
        notification_service: NamedDependency[NotificationService],
    ) -> Redirect:
        """Send a test message now (owners); the list then shows what the receiver answered."""
        await notification_service.test_for_workspace(request.user, workspace_id, hook_id)
        return Redirect(f"/workspaces/{workspace_id}#notifications-head", status_code=HTTP_303_SEE_OTHER)

    @post("/{workspace_id:uuid}/notifications/{hook_id:uuid}/remove")
    async def remove_notification(
        self, workspace_id: FromPath[UUID], hook_id: FromPath[UUID], request: Request[UserRecord, Any, Any],
        notification_service: NamedDependency[NotificationService],
    ) -> Redirect:
        await notification_service.remove_for_workspace(request.user, workspace_id, hook_id)
        return Redirect(f"/workspaces/{workspace_id}#notifications-head", status_code=HTTP_303_SEE_OTHER)

    @staticmethod
    async def _render_list(request: Request[UserRecord, Any, Any], workspace_service: WorkspaceService,
                           *, status_code: int = 200, **context: Any) -> Template:
        listed = await workspace_service.list(request.user)
        return page("workspaces.html", status_code=status_code, nav="workspaces", workspaces=[ws for ws, _ in listed],
                    roles={ws.id: role for ws, role in listed},
                    network_choices=workspace_service.network_choices(request.user), **context)
