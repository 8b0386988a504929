"""Storing users' and workspaces' model credentials (write-only over the API) and reading one back for a turn."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import structlog

from aicode.audit.service import AuditLog
from aicode.auth.models import UserRecord
from aicode.credentials.providers import PROVIDER_LABELS
from aicode.credentials.repo import CredentialRepo, WorkspaceCredentialRepo
from aicode.crypto import SecretBox
from aicode.errors import NotFoundError

__all__ = ["CredentialService"]

log = structlog.get_logger(__name__)


class CredentialService:
    def __init__(self, repo: CredentialRepo, team: WorkspaceCredentialRepo, box: SecretBox, audit: AuditLog) -> None:
        self._repo = repo
        self._team = team
        self._box = box
        self._audit = audit

    async def store(self, user: UserRecord, provider: str, kind: str, secret: str) -> None:
        await self._repo.upsert(user.id, provider, kind, self._box.seal(secret))
        log.info("credential.stored", user_id=str(user.id), provider=provider, kind=kind)
        await self._audit.record(user, "credential.set", ("user", user.id), provider=provider, kind=kind)

    async def remove(self, user: UserRecord, provider: str) -> None:
        if not await self._repo.delete(user.id, provider):
            raise NotFoundError(f"no {PROVIDER_LABELS[provider]} credential is stored")
        log.info("credential.removed", user_id=str(user.id), provider=provider)
        await self._audit.record(user, "credential.remove", ("user", user.id), provider=provider)

    async def describe(self, user_id: UUID, provider: str) -> tuple[str, datetime] | None:
        """What kind of credential is stored and when; never the secret."""
        return await self._repo.updated_at(user_id, provider)

    async def providers_of(self, user_id: UUID, workspace_id: UUID | None = None) -> set[str]:
        """The providers a turn asked for by `user_id` (in `workspace_id`, when given) has a credential for."""
        own = await self._repo.providers(user_id)
        team = await self.team_providers(workspace_id) if workspace_id is not None else set()
        return own | team

    async def team_providers(self, workspace_id: UUID) -> set[str]:
        """The providers the workspace holds a team credential for."""
        return await self._team.providers(workspace_id)

    async def for_turn(self, user_id: UUID, workspace_id: UUID, provider: str) -> tuple[str, str] | None:
        """(kind, secret) a turn asked for by `user_id` runs with: their own credential for `provider`, else
        the workspace's team credential, else None."""
        row = await self._repo.get(user_id, provider) or await self._team.get(workspace_id, provider)
        return None if row is None else (row["kind"], self._box.open(row["secret_enc"]))

    # -- a workspace's team credential (the access check is the caller's) --------------------------

    async def store_team(self, workspace_id: UUID, provider: str, kind: str, secret: str, by: UserRecord) -> None:
        await self._team.upsert(workspace_id, provider, kind, self._box.seal(secret), by.id)
        log.info("credential.team_stored", workspace_id=str(workspace_id), provider=provider, kind=kind)
        await self._audit.record(by, "credential.set", ("workspace", workspace_id), provider=provider, kind=kind)

    async def remove_team(self, workspace_id: UUID, provider: str, by: UserRecord) -> None:
        if not await self._team.delete(workspace_id, provider):
            raise NotFoundError(f"the workspace has no {PROVIDER_LABELS[provider]} team credential")
        log.info("credential.team_removed", workspace_id=str(workspace_id), provider=provider)
        await self._audit.record(by, "credential.remove", ("workspace", workspace_id), provider=provider)

    async def describe_team(self, workspace_id: UUID, provider: str) -> tuple[str, datetime, str | None] | None:
        """(kind, updated_at, who set it) of the team credential; never the secret."""
        row = await self._team.get(workspace_id, provider)
        return None if row is None else (row["kind"], row["updated_at"], row["updated_by"])
