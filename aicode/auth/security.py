"""Request authentication: Litestar's JWT auth, extended to accept personal API tokens too."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import structlog
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.middleware.authentication import AuthenticationResult
from litestar.security.jwt import JWTAuth, JWTAuthenticationMiddleware, Token

from aicode.auth.models import ApiTokenAuth, UserRecord
from aicode.auth.service import API_TOKEN_PREFIX, JWT_ALGORITHM, AuthService

__all__ = ["build_jwt_auth"]

log = structlog.get_logger(__name__)

# Paths that answer without credentials (their handlers also opt out with exclude_from_auth).
PUBLIC_PATHS = ["^/schema", "^/healthz$", "^/readyz$", "^/metrics$"]


class TokenAuthenticationMiddleware(JWTAuthenticationMiddleware):
    """Accepts `Bearer <jwt>` and `Bearer aic_…` (an API token) in one header; logs every refusal."""

    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        scheme, _, credential = connection.headers.get(self.auth_header, "").partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            raise NotAuthorizedException("authentication required: send 'Authorization: Bearer <token>'")
        try:
            return await self.authenticate_token(encoded_token=credential.strip(), connection=connection)
        except NotAuthorizedException as exc:
            # The credential itself is never logged, only why it was refused.
            log.warning("auth.rejected", reason=exc.detail, path=connection.url.path,
                        kind="api_token" if credential.startswith(API_TOKEN_PREFIX) else "jwt")
            raise

    async def authenticate_token(
        self, encoded_token: str, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        if not encoded_token.startswith(API_TOKEN_PREFIX):
            return await super().authenticate_token(encoded_token, connection)
        auth: AuthService = connection.app.state.auth_service
        found = await auth.user_for_api_token(encoded_token)
        if found is None:
            raise NotAuthorizedException("invalid or revoked API token")
        token_id, user = found
        return AuthenticationResult(user=user, auth=ApiTokenAuth(token_id=token_id))


def build_jwt_auth(auth: AuthService, jwt_key: str, token_ttl_s: int) -> JWTAuth[UserRecord, Token]:
    """The app's authentication config: JWTs signed with the server key, plus API tokens."""

    async def retrieve_user(token: Token, _: ASGIConnection[Any, Any, Any, Any]) -> UserRecord | None:
        return await auth.user_for_jwt(token)

    async def is_revoked(token: Token, _: ASGIConnection[Any, Any, Any, Any]) -> bool:
        return await auth.is_jwt_revoked(token)

    return JWTAuth[UserRecord, Token](
        token_secret=jwt_key,
        algorithm=JWT_ALGORITHM,
        retrieve_user_handler=retrieve_user,
        revoked_token_handler=is_revoked,
        authentication_middleware_class=TokenAuthenticationMiddleware,
        default_token_expiration=timedelta(seconds=token_ttl_s),
        require_claims=["exp", "sub", "jti"],
        exclude=PUBLIC_PATHS,
        description="A JWT from POST /api/auth/login, or a personal API token (aic_…) from POST /api/tokens.",
    )
