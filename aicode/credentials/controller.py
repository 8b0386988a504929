"""`/api/me/credentials/{provider}` and a workspace's team credentials: write-only storage of the model
credentials agents run with (one per provider: anthropic, openai, gemini)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, delete, get, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_204_NO_CONTENT

from aicode.access.policy import Action
from aicode.auth.models import UserRecord
from aicode.credentials.providers import CREDENTIAL_KINDS, PROVIDERS
from aicode.credentials.service import CredentialService
from aicode.errors import InvalidInputError, NotFoundError
from aicode.workspaces.service import WorkspaceService

__all__ = ["CredentialController", "WorkspaceCredentialController"]

Secret = Annotated[str, msgspec.Meta(min_length=8, max_length=4000)]


class ModelCredentialIn(msgspec.Struct, forbid_unknown_fields=True):
    """Exactly one of an API key or (Anthropic only) an OAuth token from `claude setup-token`, for Pro/Max plans."""

    api_key: Secret | None = None
    oauth_token: Secret | None = None


class CredentialStatus(msgspec.Struct):
    configured: bool
    provider: str | None = None
    kind: str | None = None
    updated_at: datetime | None = None
    updated_by: str | None = None


def _provider(name: str) -> str:
    if name not in PROVIDERS:
        raise NotFoundError(f"no model provider {name!r}: use one of {', '.join(PROVIDERS)}")
    return name


def _kind_and_secret(provider: str, data: ModelCredentialIn) -> tuple[str, str]:
    given = [(kind, value) for kind, value in (("api_key", data.api_key), ("oauth_token", data.oauth_token))
             if value is not None]
    kinds = CREDENTIAL_KINDS[provider]
    if len(given) != 1:
        raise InvalidInputError("send exactly one of api_key or oauth_token" if len(kinds) > 1 else "send an api_key")
    kind, value = given[0]
    if kind not in kinds:
        raise InvalidInputError(f"a {provider} credential is an api_key ({kind} is for anthropic only)")
    if any(ch.isspace() for ch in value):
        raise InvalidInputError(f"{kind} must not contain spaces or line breaks")
    return kind, value


class CredentialController(Controller):
    path = "/api/me/credentials"
    tags = ["auth"]

    @get("/")
    async def list_all(
        self, request: Request[UserRecord, Any, Any], credential_service: NamedDependency[CredentialService]
    ) -> list[CredentialStatus]:
        """Per provider, whether you have a credential stored, and its kind (never the secret)."""
        return [await self._status(credential_service, request.user.id, provider) for provider in PROVIDERS]

    @put("/{provider:str}", status_code=HTTP_204_NO_CONTENT)
    async def store(
        self, provider: FromPath[str], data: JSONBody[ModelCredentialIn], request: Request[UserRecord, Any, Any],
        credential_service: NamedDependency[CredentialService],
    ) -> None:
        """Store (or replace) your credential for a provider; it is encrypted and never shown again."""
        provider = _provider(provider)
        await credential_service.store(request.user, provider, *_kind_and_secret(provider, data))

    @get("/{provider:str}")
    async def status(
        self, provider: FromPath[str], request: Request[UserRecord, Any, Any],
        credential_service: NamedDependency[CredentialService],
    ) -> CredentialStatus:
        """Whether a credential is stored for the provider, and its kind (never the secret)."""
        return await self._status(credential_service, request.user.id, _provider(provider))

    @delete("/{provider:str}", status_code=HTTP_204_NO_CONTENT)
    async def remove(
        self, provider: FromPath[str], request: Request[UserRecord, Any, Any],
        credential_service: NamedDependency[CredentialService],
    ) -> None:
        await credential_service.remove(request.user, _provider(provider))

    @staticmethod
    async def _status(service: CredentialService, user_id: UUID, provider: str) -> CredentialStatus:
        found = await service.describe(user_id, provider)
        if found is None:
            return CredentialStatus(configured=False, provider=provider)
        return CredentialStatus(configured=True, provider=provider, kind=found[0], updated_at=found[1])


class WorkspaceCredentialController(Controller):
    """A workspace's team credentials: turns whose requester has none of their own for the provider run with them."""

    path = "/api/workspaces/{workspace_id:uuid}/credentials/{provider:str}"
    tags = ["workspaces"]

    @put("/", status_code=HTTP_204_NO_CONTENT)
    async def store(
        self, workspace_id: FromPath[UUID], provider: FromPath[str], data: JSONBody[ModelCredentialIn],
        request: Request[UserRecord, Any, Any], workspace_service: NamedDependency[WorkspaceService],
        credential_service: NamedDependency[CredentialService],
    ) -> None:
        """Store (or replace) a team credential (owners); encrypted, never shown again, never in a container."""
        workspace = await workspace_service.get(request.user, workspace_id, Action.MANAGE)
        provider = _provider(provider)
        kind, value = _kind_and_secret(provider, data)
        await credential_service.store_team(workspace.id, provider, kind, value, request.user)

    @get("/")
    async def status(
        self, workspace_id: FromPath[UUID], provider: FromPath[str], request: Request[UserRecord, Any, Any],
        workspace_service: NamedDependency[WorkspaceService], credential_service: NamedDependency[CredentialService],
    ) -> CredentialStatus:
        """Whether the workspace has a team credential for the provider, its kind and who set it (any member)."""
        workspace = await workspace_service.get(request.user, workspace_id)
        provider = _provider(provider)
        found = await credential_service.describe_team(workspace.id, provider)
        if found is None:
            return CredentialStatus(configured=False, provider=provider)
        return CredentialStatus(configured=True, provider=provider, kind=found[0], updated_at=found[1],
                                updated_by=found[2])

    @delete("/", status_code=HTTP_204_NO_CONTENT)
    async def remove(
        self, workspace_id: FromPath[UUID], provider: FromPath[str], request: Request[UserRecord, Any, Any],
        workspace_service: NamedDependency[WorkspaceService], credential_service: NamedDependency[CredentialService],
    ) -> None:
        workspace = await workspace_service.get(request.user, workspace_id, Action.MANAGE)
        await credential_service.remove_team(workspace.id, _provider(provider), request.user)
