"""Storing a user's Anthropic credential (write-only over the API) and reading it back for an agent run."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import structlog

from aicode.credentials.repo import CredentialRepo
from aicode.crypto import SecretBox
from aicode.errors import NotFoundError

__all__ = ["ANTHROPIC", "CredentialService"]

log = structlog.get_logger(__name__)

ANTHROPIC = "anthropic"


class CredentialService:
    def __init__(self, repo: CredentialRepo, box: SecretBox) -> None:
        self._repo = repo
        self._box = box

    async def store(self, user_id: UUID, kind: str, secret: str) -> None:
        await self._repo.upsert(user_id, ANTHROPIC, kind, self._box.seal(secret))
        log.info("credential.stored", user_id=str(user_id), provider=ANTHROPIC, kind=kind)

    async def remove(self, user_id: UUID) -> None:
        if not await self._repo.delete(user_id, ANTHROPIC):
            raise NotFoundError("no Anthropic credential is stored")
        log.info("credential.removed", user_id=str(user_id), provider=ANTHROPIC)

    async def describe(self, user_id: UUID) -> tuple[str, datetime] | None:
        """What kind of credential is stored and when; never the secret."""
        return await self._repo.updated_at(user_id, ANTHROPIC)

    async def for_agent(self, user_id: UUID) -> tuple[str, str] | None:
        """(kind, secret) to put in the agent's environment, or None when the user stored none."""
        row = await self._repo.get(user_id, ANTHROPIC)
        return None if row is None else (row["kind"], self._box.open(row["secret_enc"]))
