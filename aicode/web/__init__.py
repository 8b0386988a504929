"""The browser UI: page controllers rendering templates/, with static/ served beside them."""

from __future__ import annotations

from litestar import Router
from litestar.datastructures import CacheControlHeader
from litestar.di import NamedDependency, Provide
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler

from aicode.access.members import MemberService
from aicode.agents.catalog import AgentCatalog
from aicode.credentials.service import CredentialService
from aicode.db.pool import Database
from aicode.resources import resource_dir
from aicode.web.account import SessionPages, SettingsPages
from aicode.web.admin import AdminPages
from aicode.web.errors import PAGE_EXCEPTION_HANDLERS
from aicode.web.pages import OverviewPages, TaskPages
from aicode.web.repo import DashboardRepo
from aicode.web.templating import template_config
from aicode.web.workspace_page import WorkspacePage
from aicode.web.workspaces import WorkspacePages
from aicode.workspaces.service import WorkspaceService

__all__ = ["template_config", "web_route_handlers"]


def _dashboard(database: NamedDependency[Database]) -> DashboardRepo:
    return DashboardRepo(database)


def _workspace_page(dashboard: NamedDependency[DashboardRepo], member_service: NamedDependency[MemberService],
                    agent_catalog: NamedDependency[AgentCatalog],
                    credential_service: NamedDependency[CredentialService],
                    workspace_service: NamedDependency[WorkspaceService]) -> WorkspacePage:
    return WorkspacePage(dashboard, member_service, agent_catalog, credential_service, workspace_service)


def web_route_handlers() -> list[ControllerRouterHandler]:
    """The pages (HTML errors, sign-in redirects) and /static (public through PUBLIC_PATHS in auth.security;
    templates link each file by a content-hashed URL, so an hour of caching never serves a stale one)."""
    pages = Router(
        path="/",
        route_handlers=[SessionPages, OverviewPages, TaskPages, WorkspacePages, SettingsPages, AdminPages],
        dependencies={"dashboard": Provide(_dashboard, sync_to_thread=False),
                      "workspace_page": Provide(_workspace_page, sync_to_thread=False)},
        exception_handlers=PAGE_EXCEPTION_HANDLERS,
        include_in_schema=False,
    )
    static = create_static_files_router(
        path="/static", directories=[resource_dir("static")], name="static", include_in_schema=False,
        cache_control=CacheControlHeader(max_age=3600),
    )
    return [pages, static]
