"""HTTP endpoints for workspaces."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from aicode.access.policy import Role
from aicode.auth.models import UserRecord
from aicode.forges.models import ForgeSettings
from aicode.workspaces.models import WorkspaceRecord
from aicode.workspaces.schemas import ForgeOut, Limits, Webhook, Workspace, WorkspaceCreate, WorkspaceUpdate
from aicode.workspaces.service import WorkspaceService

__all__ = ["WorkspaceController", "workspace_out"]


def workspace_out(ws: WorkspaceRecord, role: Role | None) -> Workspace:
    """The workspace as the API shows it to someone with `role` in it (None: an admin who is not a member)."""
    forge = ForgeSettings.from_json(ws.forge)
    return Workspace(
        forge=ForgeOut(kind=forge.kind, repo=forge.repo, api_url=forge.api_url, trigger=forge.trigger,
                       has_token=ws.forge_token_enc is not None) if forge else None,
        auto_pr=ws.auto_pr,
        setup=ws.setup,
        setup_timeout_s=ws.setup_timeout_s,
        webhook=Webhook(path=f"/api/hooks/{forge.kind}/{ws.id}", configured=ws.webhook_secret_enc is not None)
        if forge else None,
        id=ws.id,
        name=ws.name,
        owner_id=ws.owner_id,
        repo_url=ws.repo_url,
        has_repo_token=ws.repo_token_enc is not None,
        default_branch=ws.default_branch,
        image=ws.image,
        limits=msgspec.convert(ws.limits, Limits),
        network=ws.network,
        egress_allow=list(ws.egress_allow),
        monthly_budget_usd=ws.monthly_budget_usd,
        role=role.value if role else None,
        status=ws.status,
        error=ws.error,
        last_synced_at=ws.last_synced_at,
        created_at=ws.created_at,
        updated_at=ws.updated_at,
    )


class WorkspaceController(Controller):
    path = "/api/workspaces"
    tags = ["workspaces"]

    @post("/", status_code=HTTP_201_CREATED)
    async def create(
        self, data: JSONBody[WorkspaceCreate], request: Request[UserRecord, Any, Any], workspace_service: NamedDependency[WorkspaceService]
    ) -> Workspace:
        """Register a repository; it answers at once with status `cloning`, then becomes `ready` or `error`.
        The creator is its first owner."""
        return workspace_out(await workspace_service.create(request.user, data), Role.OWNER)

    @get("/")
    async def list_workspaces(
        self, request: Request[UserRecord, Any, Any], workspace_service: NamedDependency[WorkspaceService]
    ) -> list[Workspace]:
        """The workspaces you are a member of, with your `role` (an admin sees all: `role` null where not a member)."""
        return [workspace_out(ws, role) for ws, role in await workspace_service.list(request.user)]

    @get("/{workspace_id:uuid}")
    async def get_workspace(
        self, workspace_id: FromPath[UUID], request: Request[UserRecord, Any, Any], workspace_service: NamedDependency[WorkspaceService]
    ) -> Workspace:
        workspace = await workspace_service.get(request.user, workspace_id)
        return workspace_out(workspace, await workspace_service.role(request.user, workspace.id))

    @patch("/{workspace_id:uuid}")
    async def update(
        self,
        workspace_id: FromPath[UUID],
        data: JSONBody[WorkspaceUpdate],
        request: Request[UserRecord, Any, Any],
        workspace_service: NamedDependency[WorkspaceService],
    ) -> Workspace:
        """Change the workspace's settings (owners)."""
        workspace = await workspace_service.update(request.user, workspace_id, data)
        return workspace_out(workspace, await workspace_service.role(request.user, workspace.id))

    @delete("/{workspace_id:uuid}", status_code=HTTP_204_NO_CONTENT)
    async def remove(
        self, workspace_id: FromPath[UUID], request: Request[UserRecord, Any, Any], workspace_service: NamedDependency[WorkspaceService]
    ) -> None:
        """Delete the workspace and its mirror (the remote repository is untouched); owners."""
        await workspace_service.delete(request.user, workspace_id)

    @post("/{workspace_id:uuid}/sync", status_code=200)
    async def sync(
        self, workspace_id: FromPath[UUID], request: Request[UserRecord, Any, Any], workspace_service: NamedDependency[WorkspaceService]
    ) -> Workspace:
        """Fetch from the remote now (or retry a failed clone); answers with the outcome (editors and owners)."""
        workspace = await workspace_service.sync(request.user, workspace_id)
        return workspace_out(workspace, await workspace_service.role(request.user, workspace.id))
