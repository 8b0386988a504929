"""`/api/me/credentials/anthropic`: write-only storage of the model credential agents run with."""

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
from aicode.credentials.service import CredentialService
from aicode.errors import InvalidInputError
from aicode.workspaces.service import WorkspaceService

__all__ = ["CredentialController", "WorkspaceCredentialController"]

Secret = Annotated[str, msgspec.Meta(min_length=8, max_length=4000)]


class AnthropicCredential(msgspec.Struct, forbid_unknown_fields=True):
    """Exactly one of an API key or an OAuth token (from `claude setup-token`, for Pro/Max plans)."""

    api_key: Secret | None = None
    oauth_token: Secret | None = None


class CredentialStatus(msgspec.Struct):
    configured: bool
    kind: str | None = None
    updated_at: datetime | None = None
    updated_by: str | None = None


def _kind_and_secret(data: AnthropicCredential) -> tuple[str, str]:
    given = [(kind, value) for kind, value in (("api_key", data.api_key), ("oauth_token", data.oauth_token))
             if value is not None]
    if len(given) != 1:
        raise InvalidInputError("send exactly one of api_key or oauth_token")
    kind, value = given[0]
    if any(ch.isspace() for ch in value):
        raise InvalidInputError(f"{kind} must not contain spaces or line breaks")
    return kind, value


class CredentialController(Controller):
    path = "/api/me/credentials/anthropic"
    tags = ["auth"]

    @put("/", status_code=HTTP_204_NO_CONTENT)
    async def store(
        self, data: JSONBody[AnthropicCredential], request: Request[UserRecord, Any, Any],
        credential_service: NamedDependency[CredentialService],
    ) -> None:
        """Store (or replace) your Anthropic credential; it is encrypted and never shown again."""
        await credential_service.store(request.user, *_kind_and_secret(data))

    @get("/")
    async def status(
        self, request: Request[UserRecord, Any, Any], credential_service: NamedDependency[CredentialService]
    ) -> CredentialStatus:
        """Whether a credential is stored, and its kind (never the secret)."""
        found = await credential_service.describe(request.user.id)
        if found is None:
            return CredentialStatus(configured=False)
        return CredentialStatus(configured=True, kind=found[0], updated_at=found[1])

    @delete("/", status_code=HTTP_204_NO_CONTENT)
    async def remove(
        self, request: Request[UserRecord, Any, Any], credential_service: NamedDependency[CredentialService]
    ) -> None:
        await credential_service.remove(request.user)


class WorkspaceCredentialController(Controller):
    """A workspace's team credential: turns whose requester has none of their own run with it."""

    path = "/api/workspaces/{workspace_id:uuid}/credentials/anthropic"
    tags = ["workspaces"]

    @put("/", status_code=HTTP_204_NO_CONTENT)
    async def store(
        self, workspace_id: FromPath[UUID], data: JSONBody[AnthropicCredential], request: Request[UserRecord, Any, Any],
        workspace_service: NamedDependency[WorkspaceService], credential_service: NamedDependency[CredentialService],
    ) -> None:
        """Store (or replace) the team credential (owners); encrypted, never shown again, never in a container."""
        workspace = await workspace_service.get(request.user, workspace_id, Action.MANAGE)
        kind, value = _kind_and_secret(data)
        await credential_service.store_team(workspace.id, kind, value, request.user)

    @get("/")
    async def status(
        self, workspace_id: FromPath[UUID], request: Request[UserRecord, Any, Any],
        workspace_service: NamedDependency[WorkspaceService], credential_service: NamedDependency[CredentialService],
    ) -> CredentialStatus:
        """Whether the workspace has a team credential, its kind and who set it (any member; never the secret)."""
        workspace = await workspace_service.get(request.user, workspace_id)
        found = await credential_service.describe_team(workspace.id)
        if found is None:
            return CredentialStatus(configured=False)
        return CredentialStatus(configured=True, kind=found[0], updated_at=found[1], updated_by=found[2])

    @delete("/", status_code=HTTP_204_NO_CONTENT)
    async def remove(
        self, workspace_id: FromPath[UUID], request: Request[UserRecord, Any, Any],
        workspace_service: NamedDependency[WorkspaceService], credential_service: NamedDependency[CredentialService],
    ) -> None:
        workspace = await workspace_service.get(request.user, workspace_id, Action.MANAGE)
        await credential_service.remove_team(workspace.id, request.user)
