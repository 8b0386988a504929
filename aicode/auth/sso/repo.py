"""SQL for external identities: which user an (issuer, subject) pair of an identity provider is."""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast
from uuid import UUID

import asyncpg

from aicode.db.errors import is_unique_violation
from aicode.db.pool import Database

__all__ = ["SSO_PASSWORD_HASH", "ExternalIdentityRepo"]

# The password hash of users created by single sign-on: not an argon2 hash, so no password ever
# verifies against it (password sign-in refuses them like a wrong password).
SSO_PASSWORD_HASH = "!sso"
# Usernames tried before giving up (the candidates end in random suffixes, so this is never reached
# in practice).
_MAX_ATTEMPTS = 100


class _IdentityTaken(Exception):
    """Another request provisioned the same identity first; rolls this one's transaction back."""


class ExternalIdentityRepo:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def user_id(self, issuer: str, subject: str) -> UUID | None:
        return cast(UUID | None, await self._db.pool.fetchval(
            "SELECT user_id FROM external_identities WHERE issuer = $1 AND subject = $2", issuer, subject
        ))

    async def provision(
        self, issuer: str, subject: str, usernames: Iterable[str], *, is_admin: bool
    ) -> tuple[UUID, bool]:
        """Create a user (the first free name of `usernames`) linked to (issuer, subject), all or nothing:
        answers (its id, True); if a concurrent request linked that identity first, (that user's id, False)."""
        try:
            async with self._db.transaction() as conn:
                user_id = await self._insert_user(conn, usernames, is_admin)
                linked = await conn.fetchval(
                    """INSERT INTO external_identities (issuer, subject, user_id) VALUES ($1, $2, $3)
                       ON CONFLICT (issuer, subject) DO NOTHING RETURNING user_id""",
                    issuer, subject, user_id,
                )
                if linked is None:
                    raise _IdentityTaken
                return user_id, True
        except _IdentityTaken:
            existing = await self.user_id(issuer, subject)
            assert existing is not None
            return existing, False

    @staticmethod
    async def _insert_user(conn: asyncpg.Connection, usernames: Iterable[str], is_admin: bool) -> UUID:
        for attempt, username in enumerate(usernames):
            if attempt >= _MAX_ATTEMPTS:
                break
            try:
                async with conn.transaction():  # a savepoint: a taken name must not abort the whole transaction
                    return cast(UUID, await conn.fetchval(
                        "INSERT INTO users (username, password_hash, is_admin) VALUES ($1, $2, $3) RETURNING id",
                        username, SSO_PASSWORD_HASH, is_admin,
                    ))
            except asyncpg.UniqueViolationError as exc:
                if not is_unique_violation(exc, "users_username_key"):
                    raise
        raise RuntimeError("no free username found for a single sign-on user")
