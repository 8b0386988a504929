"""Who a verified external token is: the (issuer, sub) → user mapping, provisioning, and bearer tokens."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from aicode.auth.models import UserRecord
from aicode.auth.repo import UserRepo
from aicode.auth.sso.repo import ExternalIdentityRepo
from aicode.auth.sso.tokens import JwtVerifier, TokenRejected
from aicode.auth.sso.usernames import username_candidates

__all__ = ["ExternalBearerAuth", "ExternalIdentityService", "ExternalTokenAuth"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ExternalTokenAuth:
    """`request.auth` for a request authenticated by an external identity provider's token."""

    issuer: str
    subject: str
    expires_at: datetime


class ExternalIdentityService:
    """Maps an identity provider's person to an aicode user, creating the user on first sign-in."""

    def __init__(self, identities: ExternalIdentityRepo, users: UserRepo) -> None:
        self._identities = identities
        self._users = users

    async def user_for(self, issuer: str, claims: Mapping[str, Any], *, admin: bool | None = None) -> UserRecord:
        """The live user of (issuer, claims["sub"]), provisioned as a member (admin if `admin`) when new.
        `admin` not None also sets an existing user's role. TokenRejected for a disabled user."""
        subject = str(claims["sub"])
        user_id, created = await self._identities.user_id(issuer, subject), False
        if user_id is None:
            user_id, created = await self._identities.provision(
                issuer, subject, username_candidates(claims), is_admin=bool(admin))
        user = await self._users.get(user_id)
        if user is None:  # deleted by an admin a moment ago
            raise TokenRejected("this account no longer exists")
        if created:
            log.info("sso.user_provisioned", username=user.username, issuer=issuer, admin=user.is_admin)
        if user.disabled:
            raise TokenRejected(f"the account {user.username!r} is disabled; ask an admin to enable it")
        if admin is not None and admin != user.is_admin:
            user = await self._users.update(user.id, disabled=None, password_hash=None, is_admin=admin) or user
            log.info("sso.role_changed", username=user.username, issuer=issuer, admin=admin)
        return user


class ExternalBearerAuth:
    """`Authorization: Bearer <jwt>` from an external identity provider (e.g. a Supabase project's
    access tokens): verified through the provider's JWKS, then mapped to a user like a sign-in."""

    def __init__(self, verifier: JwtVerifier, identities: ExternalIdentityService) -> None:
        self._verifier = verifier
        self._identities = identities

    @property
    def issuer(self) -> str:
        """What identities are filed under: the configured issuer, else the JWKS URL. Never the token's
        own unchecked `iss`: that would let this key set's tokens speak for another issuer's people."""
        return self._verifier.issuer or self._verifier.keys.url

    async def authenticate(self, token: str) -> tuple[UserRecord, ExternalTokenAuth]:
        """The token's user and what proved it; TokenRejected (a 401) for anything wrong."""
        claims = await self._verifier.verify(token)
        issuer = self.issuer
        # A bearer token's groups or roles are not trusted with the admin role: only a browser
        # sign-in (an ID token issued to this server) may change it.
        user = await self._identities.user_for(issuer, claims)
        expires_at = datetime.fromtimestamp(int(claims["exp"]), UTC)
        return user, ExternalTokenAuth(issuer=issuer, subject=str(claims["sub"]), expires_at=expires_at)
