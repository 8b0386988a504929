"""`/api/me/credentials/anthropic`: write-only storage of the model credential agents run with."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, delete, get, put
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.status_codes import HTTP_204_NO_CONTENT

from aicode.auth.models import UserRecord
from aicode.credentials.service import CredentialService
from aicode.errors import InvalidInputError

__all__ = ["CredentialController"]

Secret = Annotated[str, msgspec.Meta(min_length=8, max_length=4000)]


class AnthropicCredential(msgspec.Struct, forbid_unknown_fields=True):
    """Exactly one of an API key or an OAuth token (from `claude setup-token`, for Pro/Max plans)."""

    api_key: Secret | None = None
    oauth_token: Secret | None = None


class CredentialStatus(msgspec.Struct):
    configured: bool
    kind: str | None = None
    updated_at: datetime | None = None


class CredentialController(Controller):
    path = "/api/me/credentials/anthropic"
    tags = ["auth"]

    @put("/", status_code=HTTP_204_NO_CONTENT)
    async def store(
        self, data: JSONBody[AnthropicCredential], request: Request[UserRecord, Any, Any],
        credential_service: NamedDependency[CredentialService],
    ) -> None:
        """Store (or replace) your Anthropic credential; it is encrypted and never shown again."""
        given = [(kind, value) for kind, value in (("api_key", data.api_key), ("oauth_token", data.oauth_token))
                 if value is not None]
        if len(given) != 1:
            raise InvalidInputError("send exactly one of api_key or oauth_token")
        kind, value = given[0]
        if any(ch.isspace() for ch in value):
            raise InvalidInputError(f"{kind} must not contain spaces or line breaks")
        await credential_service.store(request.user.id, kind, value)

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
        await credential_service.remove(request.user.id)
