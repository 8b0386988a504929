"""Capability tokens: one per running turn, handed to its container in place of a model credential.

A token is random, stored only as its sha256 (in memory for this process's gateway, and in
`turn_grants` for the record), and valid from the turn's start until its end, when it is revoked.
"""

from __future__ import annotations

import hashlib
import secrets
from uuid import UUID

from aicode.gateway.models import ModelCredential, TurnGrant
from aicode.gateway.repo import GrantRepo

__all__ = ["GrantStore", "TOKEN_PREFIX"]

TOKEN_PREFIX = "aicode-turn-"


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class GrantStore:
    def __init__(self, repo: GrantRepo) -> None:
        self._repo = repo
        self._live: dict[bytes, TurnGrant] = {}

    async def issue(self, *, task_id: UUID, user_id: UUID, workspace_id: UUID,
                    credentials: dict[str, ModelCredential], egress_allow: tuple[str, ...]) -> tuple[str, TurnGrant]:
        """A new token for a turn that is starting; the token itself is returned once, never stored."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        grant = TurnGrant(token_hash=_hash(token), task_id=task_id, user_id=user_id, workspace_id=workspace_id,
                          credentials=credentials, egress_allow=egress_allow)
        await self._repo.insert(grant.token_hash, task_id, user_id, workspace_id)
        self._live[grant.token_hash] = grant
        return token, grant

    async def revoke(self, grant: TurnGrant) -> None:
        """End the token: from now on the gateway refuses it."""
        self._live.pop(grant.token_hash, None)
        await self._repo.delete(grant.token_hash)

    def lookup(self, token: str) -> TurnGrant | None:
        if not token.startswith(TOKEN_PREFIX):
            return None
        return self._live.get(_hash(token))

    async def forget_ended(self) -> None:
        """Drop the records of turns a crash cut off (at start-up)."""
        await self._repo.delete_ended()
