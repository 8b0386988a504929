"""Who someone is and what proves it: passwords, JWTs, API tokens, and the first admin."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from uuid import UUID, uuid4

import msgspec
import structlog
from litestar.security.jwt import Token

from aicode.access.changes import AccessChanges
from aicode.audit.service import AuditLog
from aicode.auth.models import UserRecord
from aicode.auth.passwords import hash_password, verify_password
from aicode.auth.repo import RevokedJwtRepo, TokenRepo, UserRepo
from aicode.auth.schemas import MeUpdate
from aicode.auth.throttle import LoginThrottle
from aicode.errors import (
    AuthenticationError,
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    TooManyError,
)
from aicode.request_log import CLIENT_ADDRESS

__all__ = ["API_TOKEN_PREFIX", "JWT_ALGORITHM", "AuthService"]

log = structlog.get_logger(__name__)

_GIT_NAME_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f<>]")
_GIT_EMAIL = re.compile(r"[^\s<>@\x00-\x1f\x7f]+@[^\s<>@\x00-\x1f\x7f]+")

API_TOKEN_PREFIX = "aic_"
JWT_ALGORITHM = "HS256"
# Sign-ins waiting for a password check beyond this are refused at once (429) instead of queueing.
_MAX_HASH_WAITING = 64


def _token_hash(token: str) -> bytes:
    # API tokens are 256 random bits: a fast hash is enough, no salt or work factor needed.
    return hashlib.sha256(token.encode()).digest()


class AuthService:
    def __init__(
        self, users: UserRepo, tokens: TokenRepo, revoked: RevokedJwtRepo, *, jwt_key: str, token_ttl_s: int,
        changes: AccessChanges | None = None, audit: AuditLog | None = None,
    ) -> None:
        self._users = users
        self._changes = changes
        self._audit = audit
        self._throttle = LoginThrottle()
        self._hash_slots = asyncio.Semaphore(max(2, os.cpu_count() or 2))
        self._hash_waiting = 0
        self._tokens = tokens
        self._revoked = revoked
        self._jwt_key = jwt_key
        self._token_ttl = timedelta(seconds=token_ttl_s)
        self.setup_code: str | None = None

    # -- users ---------------------------------------------------------------------------------

    async def create_user(self, username: str, password: str, *, admin: bool = False,
                          actor: UserRecord | None = None) -> UserRecord:
        user = await self._users.insert(username, await hash_password(password), admin)
        assert user is not None
        log.info("user.created", username=user.username, admin=admin)
        await self._record(actor or "console", "user.create", ("user", user.id), username=user.username, admin=admin)
        return user

    async def list_users(self) -> list[UserRecord]:
        return await self._users.list()

    async def update_user(
        self, actor: UserRecord, user_id: UUID, *, disabled: bool | None, password: str | None, admin: bool | None,
        budget: tuple[float | None] | None = None,
    ) -> UserRecord:
        if user_id == actor.id and (disabled or admin is False):
            raise ForbiddenError("you cannot disable yourself or remove your own admin role")
        password_hash = await hash_password(password) if password is not None else None
        user = await self._users.update(user_id, disabled=disabled, password_hash=password_hash, is_admin=admin,
                                        budget=budget)
        if user is None:
            raise NotFoundError(f"no user with id {user_id}")
        if disabled or password is not None:
            # Signed out everywhere, for good: re-enabling later does not bring old tokens back.
            await self._users.end_sessions(user.id)
        if self._changes is not None and (disabled is not None or password is not None or admin is not None):
            self._changes.publish(user.id)
        log.info("user.updated", username=user.username, disabled=disabled, admin=admin,
                 password_changed=password is not None, budget=budget, by=actor.username)
        changed = {"disabled": disabled, "admin": admin, "password_reset": password is not None or None,
                   "monthly_budget_usd": budget[0] if budget else None}
        await self._record(actor, "user.update", ("user", user.id), username=user.username,
                           **{k: v for k, v in changed.items() if v is not None})
        return user

    async def set_git_identity(self, user: UserRecord, update: MeUpdate) -> UserRecord:
        """Change the fields `update` sets (null: back to the default) and keep the others."""
        name = user.git_name if update.git_name is msgspec.UNSET else update.git_name
        email = user.git_email if update.git_email is msgspec.UNSET else update.git_email
        # Both go into commit headers, where a line break or an angle bracket would forge another field.
        if name is not None and (_GIT_NAME_FORBIDDEN.search(name) or not name.strip()):
            raise InvalidInputError("git_name: one line of text, without < or > (it is the commits' author name)")
        if email is not None and not _GIT_EMAIL.fullmatch(email):
            raise InvalidInputError("git_email: an email address such as ada@example.com (no spaces, < or >)")
        updated = await self._users.set_git_identity(user.id, name, email)
        if updated is None:
            raise NotFoundError("your account no longer exists")
        log.info("user.git_identity", username=user.username)
        return updated

    async def ensure_first_admin(self, bootstrap: tuple[str, str] | None) -> None:
        """At start-up with no users: create the bootstrap admin, or offer a one-time setup code."""
        if await self._users.count() > 0:
            return
        if bootstrap is not None:
            name, password = bootstrap
            user = await self._users.insert(name, await hash_password(password), True, only_if_no_users=True)
            if user is not None:
                log.info("user.bootstrap_admin_created", username=name)
            return
        self.setup_code = secrets.token_urlsafe(24)

    async def create_first_admin(self, setup_code: str, username: str, password: str) -> UserRecord:
        """Redeem the one-time setup code; works once, and only while there are no users."""
        if self.setup_code is None or not secrets.compare_digest(setup_code, self.setup_code):
            log.warning("auth.setup_code_rejected")
            raise AuthenticationError("wrong or expired setup code")
        user = await self._users.insert(username, await hash_password(password), True, only_if_no_users=True)
        self.setup_code = None
        if user is None:
            raise ConflictError("the first admin already exists; sign in instead")
        log.info("user.first_admin_created", username=username)
        return user

    # -- passwords and JWTs --------------------------------------------------------------------

    async def login(self, username: str, password: str) -> tuple[str, datetime]:
        """Check the password and issue a signed JWT; a single vague 401 for every failure, 429 past the
        throttle (per account and per client address), 429 when too many passwords wait to be checked."""
        address = CLIENT_ADDRESS.get()
        if wait_s := self._throttle.wait_s(username, address):
            log.warning("auth.login_throttled", username=username, address=address, retry_after_s=wait_s)
            raise TooManyError(f"too many failed sign-ins: try again in {wait_s} s", retry_after_s=wait_s)
        user = await self._users.get_by_username(username)
        ok = await self._verify(user.password_hash if user else None, password)
        if user is None or not ok or user.disabled:
            reason = "unknown user" if user is None else ("wrong password" if not ok else "user disabled")
            self._throttle.failed(username, address)
            log.warning("auth.login_failed", username=username, reason=reason)
            await self._record(user or username, "auth.login_failed", ("user", user.id if user else username),
                               reason=reason)
            raise AuthenticationError("wrong username or password")
        self._throttle.succeeded(username)
        log.info("auth.login", username=user.username)
        await self._record(user, "auth.login", ("user", user.id), method="password")
        return self.issue_jwt(user)

    async def _verify(self, password_hash: str | None, password: str) -> bool:
        """Password checks cost ~50 ms of CPU each: a few at a time, and a bounded line waiting for them."""
        if self._hash_waiting >= _MAX_HASH_WAITING:
            raise TooManyError("the server is busy checking passwords: try again in a moment", retry_after_s=1)
        self._hash_waiting += 1
        try:
            async with self._hash_slots:
                return await verify_password(password_hash, password)
        finally:
            self._hash_waiting -= 1

    async def _record(self, actor: UserRecord | str | None, action: str, target: tuple[str, object] | None = None,
                      **detail: object) -> None:
        if self._audit is not None:
            await self._audit.record(actor, action, target, **detail)

    async def sign_in_with(self, user: UserRecord, method: str) -> tuple[str, datetime]:
        """A session for someone an identity provider vouched for (`method`, e.g. "oidc")."""
        log.info("auth.login", username=user.username, method=method)
        await self._record(user, "auth.login", ("user", user.id), method=method)
        return self.issue_jwt(user)

    def issue_jwt(self, user: UserRecord) -> tuple[str, datetime]:
        now = datetime.now(UTC)
        expires_at = now + self._token_ttl
        # `ver`: the user's session version; a password reset or disable moves it on and ends this token.
        token = Token(exp=expires_at, sub=str(user.id), iat=now, jti=uuid4().hex, extras={"ver": user.session_version})
        return token.encode(self._jwt_key, JWT_ALGORITHM), expires_at

    async def user_for_jwt(self, token: Token) -> UserRecord | None:
        try:
            user = await self._users.get(UUID(token.sub))
        except ValueError:
            return None
        if user is None or user.disabled or token.extras.get("ver", 0) != user.session_version:
            return None
        return user

    async def is_jwt_revoked(self, token: Token) -> bool:
        # This server's tokens carry one id (issue_jwt), never the list JWT also allows.
        return token.jti is not None and await self._revoked.contains(cast(str, token.jti))

    async def sign_out(self, user: UserRecord, token: Token) -> None:
        """The session's JWT stops working (a copied cookie too)."""
        await self.revoke_jwt(token)
        await self._record(user, "auth.logout", ("user", user.id))

    async def revoke_jwt(self, token: Token) -> None:
        if token.jti is not None:
            await self._revoked.add(cast(str, token.jti), token.exp)  # a str: see is_jwt_revoked

    # -- API tokens ----------------------------------------------------------------------------

    async def create_api_token(self, user: UserRecord, name: str) -> tuple[str, dict[str, Any]]:
        token = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = await self._tokens.insert(user.id, name, _token_hash(token), token[: len(API_TOKEN_PREFIX) + 6])
        log.info("api_token.created", username=user.username, token_id=str(row["id"]), name=name)
        await self._record(user, "token.create", ("api_token", row["id"]), name=name)
        return token, dict(row)

    async def list_api_tokens(self, user: UserRecord) -> list[dict[str, Any]]:
        return [dict(row) for row in await self._tokens.list(user.id)]

    async def revoke_api_token(self, user: UserRecord, token_id: UUID) -> None:
        if not await self._tokens.revoke(user.id, token_id):
            raise NotFoundError(f"no API token with id {token_id}")
        log.info("api_token.revoked", username=user.username, token_id=str(token_id))
        await self._record(user, "token.revoke", ("api_token", token_id))

    async def user_for_api_token(self, token: str) -> tuple[UUID, UserRecord] | None:
        """The token's id and live owner, or None for unknown, revoked or disabled."""
        found = await self._tokens.find_live(_token_hash(token))
        if found is None or found[1].disabled:
            return None
        await self._tokens.touch(found[0])
        return found
