"""`GET /api/agents`: the agents this server can run, in which versions, with which models, and whether
the caller holds a key for each (their own, or the workspace's team key)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import FromQuery

from aicode.agents.catalog import AgentCatalog
from aicode.agents.registry import AGENTS, driver_for
from aicode.auth.models import UserRecord
from aicode.credentials.service import CredentialService
from aicode.workspaces.service import WorkspaceService

__all__ = ["AgentController", "AgentOut"]


class AgentOut(msgspec.Struct):
    name: str  # what `agent` takes on a task
    label: str
    provider: str  # whose API key it runs with: anthropic, openai or gemini
    image: str  # the workspace image looked in
    available: bool  # the CLI is in the image
    version: str | None
    default_model: str | None  # None: the CLI's own default
    models: list[str]
    credential: bool  # the caller has a key for the provider (their own, or the workspace's team key)
    missing: str | None = None  # what stands in the way, in words: no CLI in the image, no key


class AgentController(Controller):
    path = "/api/agents"
    tags = ["agents"]

    @get("/")
    async def list_agents(
        self, request: Request[UserRecord, Any, Any], agent_catalog: NamedDependency[AgentCatalog],
        credential_service: NamedDependency[CredentialService], workspace_service: NamedDependency[WorkspaceService],
        workspace_id: FromQuery[UUID | None] = None,
    ) -> list[AgentOut]:
        """The agents, as found in the default workspace image or, with `workspace_id`, in that workspace's."""
        image = agent_catalog.default_image
        if workspace_id is not None:
            workspace = await workspace_service.get(request.user, workspace_id)
            image = workspace.image or image
        found = await agent_catalog.agents_in(image)
        keys = await credential_service.providers_of(request.user.id, workspace_id)
        agents = []
        for name in AGENTS:
            driver = driver_for(name)
            version = found.versions.get(name)
            missing = found.problem or (None if version else f"{driver.executable} is not installed in {image}")
            if missing is None and driver.provider not in keys:
                missing = f"no {driver.provider} API key: add one in Settings"
            agents.append(AgentOut(
                name=name, label=driver.label, provider=driver.provider, image=image, available=version is not None,
                version=version, default_model=driver.default_model, models=list(driver.models),
                credential=driver.provider in keys, missing=missing,
            ))
        return agents
