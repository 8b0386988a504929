"""The admin pages: users (create, disable or enable, reset passwords), the workspace image (built from the
Containerfile), the audit trail, the nodes.
Members get a 403."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER

from aicode.audit.service import AuditLog
from aicode.auth.guards import requires_admin
from aicode.auth.models import UserRecord
from aicode.auth.schemas import UserCreate, UserUpdate
from aicode.auth.service import AuthService
from aicode.containers.image_build import ImageBuilds
from aicode.errors import AicodeError, InvalidInputError
from aicode.nodes.repo import NodeRepo
from aicode.web.forms import form_values, parse_form
from aicode.web.templating import page

__all__ = ["AdminPages"]

_DONE = {
    "created": "User created.",
    "disabled": "User disabled: their sessions and tokens stop working at once.",
    "enabled": "User enabled.",
    "password": "Password reset.",
    "budget": "Monthly budget saved.",
}


_AUDIT_SHOWN = 300


class AdminPages(Controller):
    path = "/admin"
    guards = [requires_admin]
    include_in_schema = False

    @get("/")
    async def users(self, auth_service: NamedDependency[AuthService], image_builds: NamedDependency[ImageBuilds],
                    done: FromQuery[str | None] = None) -> Template:
        return await self._render(auth_service, image_builds, notice=_DONE.get(done or ""))

    @post("/image/build")
    async def build_image(self, request: Request[UserRecord, Any, Any], auth_service: NamedDependency[AuthService],
                          image_builds: NamedDependency[ImageBuilds]) -> Response[Any]:
        """Start building the default workspace image; the Admin page follows its progress."""
        try:
            image_builds.start(request.user.username)
        except AicodeError as exc:
            return await self._render(auth_service, image_builds, status_code=exc.status_code, image_error=exc.detail)
        return Redirect("/admin#image", status_code=HTTP_303_SEE_OTHER)

    @get("/audit")
    async def audit(self, audit_log: NamedDependency[AuditLog], actor: FromQuery[str | None] = None,
                    action: FromQuery[str | None] = None) -> Template:
        """The audit trail, newest first, filtered by who and what."""
        actor = (actor or "").strip()[:64] or None
        action = (action or "").strip()[:64] or None
        events = await audit_log.events(actor=actor, action=action, since=None, before_id=None, limit=_AUDIT_SHOWN)
        return page("admin_audit.html", nav="admin", events=events, actor=actor or "", action=action or "",
                    shown=_AUDIT_SHOWN)

    @get("/nodes")
    async def nodes(self, request: Request[UserRecord, Any, Any], node_repo: NamedDependency[NodeRepo]) -> Template:
        """The nodes sharing this database: alive or down, running of capacity, version, last heartbeat."""
        return page("admin_nodes.html", nav="admin", nodes=await node_repo.list(),
                    this_node=request.app.state.settings.node_name)

    @post("/users")
    async def create_user(self, request: Request[UserRecord, Any, Any], auth_service: NamedDependency[AuthService],
                          image_builds: NamedDependency[ImageBuilds]) -> Response[Any]:
        form = await request.form()
        values: dict[str, Any] = await form_values(request, ("username",))
        values["password"] = str(form.get("password", ""))
        values["admin"] = form.get("admin") == "on"
        try:
            data = parse_form(values, UserCreate)
            await auth_service.create_user(data.username, data.password, admin=data.admin, actor=request.user)
        except AicodeError as exc:
            return await self._render(auth_service, image_builds, status_code=exc.status_code, create_error=exc.detail,
                                      username=values.get("username", ""))
        return Redirect("/admin?done=created", status_code=HTTP_303_SEE_OTHER)

    @post("/users/{user_id:uuid}")
    async def change_user(
        self, user_id: FromPath[UUID], request: Request[UserRecord, Any, Any], auth_service: NamedDependency[AuthService],
        image_builds: NamedDependency[ImageBuilds],
    ) -> Response[Any]:
        """One of: disable, enable, set a new password, or set the monthly budget (the `action` field says which)."""
        form = await request.form()
        action = str(form.get("action", ""))
        try:
            if action in ("disable", "enable"):
                update = UserUpdate(disabled=action == "disable")
            elif action == "password":
                update = parse_form({"password": str(form.get("password", ""))}, UserUpdate)
            elif action == "budget":
                # An empty field removes the budget.
                raw = str(form.get("monthly_budget_usd", "")).strip()
                update = parse_form({"monthly_budget_usd": raw or None}, UserUpdate)
            else:
                raise InvalidInputError("unknown action")
            budget = None if update.monthly_budget_usd is msgspec.UNSET else (update.monthly_budget_usd,)
            await auth_service.update_user(request.user, user_id, disabled=update.disabled,
                                           password=update.password, admin=None, budget=budget)
        except AicodeError as exc:
            return await self._render(auth_service, image_builds, status_code=exc.status_code, change_error=exc.detail,
                                      change_user=user_id)
        done = {"disable": "disabled", "enable": "enabled"}.get(action, action)
        return Redirect(f"/admin?done={done}", status_code=HTTP_303_SEE_OTHER)

    @staticmethod
    async def _render(auth_service: AuthService, image_builds: ImageBuilds, *, status_code: int = 200,
                      **context: Any) -> Template:
        users = sorted(await auth_service.list_users(), key=lambda user: user.username.lower())
        return page("admin.html", status_code=status_code, nav="admin", users=users,
                    image=await image_builds.status(), **context)
