"""Request authentication: Litestar's JWT cookie auth, extended to accept personal API tokens too.

Scripts send `Authorization: Bearer <jwt or aic_…>`; browsers carry the JWT in an HttpOnly session cookie.
A request with the header is judged by the header alone, so a stale cookie never masks a bad token.
With AICODE_JWT_JWKS_URL set, a bearer JWT that is not aicode's own (HS256) is an external identity
provider's, verified through its JWKS (see aicode.auth.sso).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import structlog
from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException, WebSocketException
from litestar.middleware.authentication import AuthenticationResult
from litestar.security.jwt import JWTCookieAuth, JWTCookieAuthenticationMiddleware, Token

from aicode.auth.models import ApiTokenAuth, UserRecord
from aicode.auth.service import API_TOKEN_PREFIX, JWT_ALGORITHM, AuthService
from aicode.auth.sso.config import SingleSignOn
from aicode.auth.sso.tokens import TokenRejected, token_algorithm

__all__ = ["PUBLIC_PATHS", "SESSION_COOKIE", "build_jwt_auth"]

log = structlog.get_logger(__name__)

# Paths that answer without credentials (their handlers also opt out with exclude_from_auth).
# Forge webhooks (`/api/hooks/…`) authenticate by the workspace's webhook secret instead.
PUBLIC_PATHS = ["^/schema", "^/healthz$", "^/readyz$", "^/metrics$", "^/static/", "^/auth/oidc/", "^/api/hooks/"]
# The browser session: a JWT in an HttpOnly, SameSite=Lax cookie set by the sign-in page.
SESSION_COOKIE = "aicode_session"


class TokenAuthenticationMiddleware(JWTCookieAuthenticationMiddleware):
    """Accepts `Bearer <jwt>` and `Bearer aic_…` (an API token) in one header, or the session cookie; logs refusals."""

    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        try:
            return await self._authenticate(connection)
        except NotAuthorizedException as exc:
            if connection.scope["type"] == ScopeType.WEBSOCKET:
                # Litestar closes a WebSocket with 4500 for anything but a WebSocketException: say 4401.
                raise WebSocketException(detail=exc.detail, code=4401) from None
            raise

    async def _authenticate(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        if self.auth_header not in connection.headers:
            return await self._authenticate_cookie(connection)
        scheme, _, credential = connection.headers.get(self.auth_header, "").partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            raise NotAuthorizedException("authentication required: send 'Authorization: Bearer <token>'")
        try:
            return await self.authenticate_token(encoded_token=credential.strip(), connection=connection)
        except NotAuthorizedException as exc:
            # The credential itself is never logged, only why it was refused.
            log.warning("auth.rejected", reason=exc.detail, path=connection.url.path, kind=_kind(credential.strip()))
            raise

    async def _authenticate_cookie(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        """The browser path: a session JWT (never an API token) from the cookie."""
        cookie = connection.cookies.get(self.auth_cookie_key, "")
        if not cookie or cookie.startswith(API_TOKEN_PREFIX):
            raise NotAuthorizedException("authentication required: send 'Authorization: Bearer <token>' or sign in")
        if connection.scope["type"] == ScopeType.WEBSOCKET and not _same_origin(connection):
            # Browsers send cookies on cross-site WebSocket handshakes and CSRF tokens do not cover them.
            raise NotAuthorizedException("cross-origin WebSocket refused")
        try:
            return await super().authenticate_token(encoded_token=cookie, connection=connection)
        except NotAuthorizedException as exc:
            log.warning("auth.rejected", reason=exc.detail, path=connection.url.path, kind="session_cookie")
            raise

    async def authenticate_token(
        self, encoded_token: str, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        if not encoded_token.startswith(API_TOKEN_PREFIX):
            sso: SingleSignOn | None = getattr(connection.app.state, "sso", None)
            if sso is not None and sso.bearer is not None and token_algorithm(encoded_token) != JWT_ALGORITHM:
                return await self._authenticate_external(sso, encoded_token)
            return await super().authenticate_token(encoded_token, connection)
        auth: AuthService = connection.app.state.auth_service
        found = await auth.user_for_api_token(encoded_token)
        if found is None:
            raise NotAuthorizedException("invalid or revoked API token")
        token_id, user = found
        return AuthenticationResult(user=user, auth=ApiTokenAuth(token_id=token_id))

    @staticmethod
    async def _authenticate_external(sso: SingleSignOn, encoded_token: str) -> AuthenticationResult:
        """An identity provider's token: only RS256/ES256 through its JWKS (aicode's own are HS256, so
        an HS256 token never reaches this path and a provider's public key is never an HMAC secret)."""
        assert sso.bearer is not None
        try:
            user, auth = await sso.bearer.authenticate(encoded_token)
        except TokenRejected as exc:
            raise NotAuthorizedException(exc.detail) from None
        return AuthenticationResult(user=user, auth=auth)


def _kind(credential: str) -> str:
    """What sort of credential a refused header carried, for the log (never the credential itself)."""
    if credential.startswith(API_TOKEN_PREFIX):
        return "api_token"
    return "jwt" if token_algorithm(credential) in (JWT_ALGORITHM, None) else "external_jwt"


def _same_origin(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    """True when the Origin header (sent by every browser) names the host the request went to."""
    origin = connection.headers.get("origin")
    if origin is None:
        return True  # not a browser: no ambient cookie to abuse
    return origin.partition("://")[2].rstrip("/") == connection.headers.get("host", "")


def build_jwt_auth(auth: AuthService, jwt_key: str, token_ttl_s: int) -> JWTCookieAuth[UserRecord, Token]:
    """The app's authentication config: JWTs signed with the server key (header or cookie), plus API tokens."""

    async def retrieve_user(token: Token, _: ASGIConnection[Any, Any, Any, Any]) -> UserRecord | None:
        return await auth.user_for_jwt(token)

    async def is_revoked(token: Token, _: ASGIConnection[Any, Any, Any, Any]) -> bool:
        return await auth.is_jwt_revoked(token)

    return JWTCookieAuth[UserRecord, Token](
        token_secret=jwt_key,
        algorithm=JWT_ALGORITHM,
        retrieve_user_handler=retrieve_user,
        revoked_token_handler=is_revoked,
        authentication_middleware_class=TokenAuthenticationMiddleware,
        default_token_expiration=timedelta(seconds=token_ttl_s),
        require_claims=["exp", "sub", "jti"],
        exclude=PUBLIC_PATHS,
        key=SESSION_COOKIE,
        samesite="lax",
        description="A JWT from POST /api/auth/login, or a personal API token (aic_…) from POST /api/tokens.",
    )
