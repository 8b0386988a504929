"""The "Model keys" rows of the settings page (the user's own keys) and of a workspace page (its team
keys): one per provider, with its status, and the form that stores a key (write-only)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from litestar import Request

from aicode.credentials.controller import ModelCredentialIn
from aicode.credentials.providers import CREDENTIAL_KINDS, PROVIDER_LABELS, PROVIDERS
from aicode.credentials.service import CredentialService
from aicode.errors import InvalidInputError, NotFoundError
from aicode.web.forms import form_values, parse_form

__all__ = ["KIND_LABELS", "KeyRow", "checked_provider", "own_keys", "submitted_key", "team_keys"]

KIND_LABELS = {"api_key": "API key", "oauth_token": "OAuth token"}
# How each provider's keys look, as a hint beside the field.
_KEY_HINTS = {"anthropic": "sk-ant-…, or a token from claude setup-token", "openai": "sk-…", "gemini": "AIza…"}


@dataclass(frozen=True, slots=True)
class KeyRow:
    """One provider's stored key, as the page shows it (never the secret)."""

    provider: str
    label: str
    kinds: tuple[str, ...]
    hint: str
    kind: str | None = None  # None: no key stored
    updated_at: datetime | None = None
    updated_by: str | None = None

    @property
    def configured(self) -> bool:
        return self.kind is not None


def _row(provider: str, found: tuple[Any, ...] | None) -> KeyRow:
    row = KeyRow(provider=provider, label=PROVIDER_LABELS[provider], kinds=CREDENTIAL_KINDS[provider],
                 hint=_KEY_HINTS.get(provider, ""))
    if found is None:
        return row
    return KeyRow(row.provider, row.label, row.kinds, row.hint, kind=found[0], updated_at=found[1],
                  updated_by=found[2] if len(found) > 2 else None)


async def own_keys(credentials: CredentialService, user_id: UUID) -> list[KeyRow]:
    return [_row(provider, await credentials.describe(user_id, provider)) for provider in PROVIDERS]


async def team_keys(credentials: CredentialService, workspace_id: UUID) -> list[KeyRow]:
    return [_row(provider, await credentials.describe_team(workspace_id, provider)) for provider in PROVIDERS]


def checked_provider(provider: str) -> str:
    if provider not in PROVIDERS:
        raise NotFoundError(f"no model provider {provider!r}: use one of {', '.join(PROVIDERS)}")
    return provider


async def submitted_key(request: Request[Any, Any, Any], provider: str) -> tuple[str, str]:
    """(kind, secret) from a key form, checked as the JSON API checks them."""
    values = await form_values(request, ("kind", "secret"))
    kinds = CREDENTIAL_KINDS[provider]
    kind = values.get("kind", kinds[0])
    if kind not in kinds:
        allowed = " or ".join(f"an {KIND_LABELS[k]}" for k in kinds)
        raise InvalidInputError(f"{PROVIDER_LABELS[provider]} takes {allowed}")
    secret = values.get("secret", "")
    if not secret:
        raise InvalidInputError(f"enter the {PROVIDER_LABELS[provider]} {KIND_LABELS[kind]}")
    parse_form({kind: secret}, ModelCredentialIn)
    if any(ch.isspace() for ch in secret):
        raise InvalidInputError("the key must not contain spaces or line breaks")
    return kind, secret
