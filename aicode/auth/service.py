"""Who someone is and what proves it: passwords, JWTs, API tokens, and the first admin."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import structlog
from litestar.security.jwt import Token

from aicode.auth.models import UserRecord
from aicode.auth.passwords import hash_password, verify_password
from aicode.auth.repo import RevokedJwtRepo, TokenRepo, UserRepo
from aicode.errors import AuthenticationError, ConflictError, ForbiddenError, NotFoundError

__all__ = ["API_TOKEN_PREFIX", "JWT_ALGORITHM", "AuthService"]

log = structlog.get_logger(__name__)

API_TOKEN_PREFIX = "aic_"
JWT_ALGORITHM = "HS256"


def _token_hash(token: str) -> bytes:
    # API tokens are 256 random bits: a fast hash is enough, no salt or work factor needed.
    return hashlib.sha256(token.encode()).digest()


class AuthService:
    def __init__(
        self, users: UserRepo, tokens: TokenRepo, revoked: RevokedJwtRepo, *, jwt_key: str, token_ttl_s: int
    ) -> None:
        self._users = users
        self._tokens = tokens
        self._revoked = revoked
        self._jwt_key = jwt_key
        self._token_ttl = timedelta(seconds=token_ttl_s)
        self.setup_code: str | None = None

    # -- users ---------------------------------------------------------------------------------

    async def create_user(self, username: str, password: str, *, admin: bool = False) -> UserRecord:
        user = await self._users.insert(username, await hash_password(password), admin)
        assert user is not None
        log.info("user.created", username=user.username, admin=admin)
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
        log.info("user.updated", username=user.username, disabled=disabled, admin=admin,
                 password_changed=password is not None, budget=budget, by=actor.username)
        return user

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
        """Check the password and issue a signed JWT; a single vague 401 for every failure."""
        user = await self._users.get_by_username(username)
        ok = await verify_password(user.password_hash if user else None, password)
        if user is None or not ok or user.disabled:
            reason = "unknown user" if user is None else ("wrong password" if not ok else "user disabled")
            log.warning("auth.login_failed", username=username, reason=reason)
            raise AuthenticationError("wrong username or password")
        log.info("auth.login", username=user.username)
        return self.issue_jwt(user)

    def issue_jwt(self, user: UserRecord) -> tuple[str, datetime]:
        now = datetime.now(UTC)
        expires_at = now + self._token_ttl
        token = Token(exp=expires_at, sub=str(user.id), iat=now, jti=uuid4().hex)
        return token.encode(self._jwt_key, JWT_ALGORITHM), expires_at

    async def user_for_jwt(self, token: Token) -> UserRecord | None:
        try:
            user = await self._users.get(UUID(token.sub))
        except ValueError:
            return None
        return user if user is not None and not user.disabled else None

    async def is_jwt_revoked(self, token: Token) -> bool:
        return token.jti is not None and await self._revoked.contains(token.jti)

    async def revoke_jwt(self, token: Token) -> None:
        if token.jti is not None:
            await self._revoked.add(token.jti, token.exp)

    # -- API tokens ----------------------------------------------------------------------------

    async def create_api_token(self, user: UserRecord, name: str) -> tuple[str, dict]:
        token = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = await self._tokens.insert(user.id, name, _token_hash(token), token[: len(API_TOKEN_PREFIX) + 6])
        log.info("api_token.created", username=user.username, token_id=str(row["id"]), name=name)
        return token, dict(row)

    async def list_api_tokens(self, user: UserRecord) -> list[dict]:
        return [dict(row) for row in await self._tokens.list(user.id)]

    async def revoke_api_token(self, user: UserRecord, token_id: UUID) -> None:
        if not await self._tokens.revoke(user.id, token_id):
            raise NotFoundError(f"no API token with id {token_id}")
        log.info("api_token.revoked", username=user.username, token_id=str(token_id))

    async def user_for_api_token(self, token: str) -> tuple[UUID, UserRecord] | None:
        """The token's id and live owner, or None for unknown, revoked or disabled."""
        found = await self._tokens.find_live(_token_hash(token))
        if found is None or found[1].disabled:
            return None
        await self._tokens.touch(found[0])
        return found
