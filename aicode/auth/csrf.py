"""CSRF protection for cookie-authenticated requests: Litestar's CSRF middleware, skipped for bearer requests.

CSRF is a cookie problem: a forged cross-site request carries the browser's session cookie but can
never set an `Authorization` header, so requests that authenticate with that header (scripts, the
CLI) need no token. Every other state-changing request must echo the CSRF cookie's token in the
`X-CSRFToken` header (fetch) or the `_csrf_token` form field (forms).
"""

from __future__ import annotations

from litestar.config.csrf import CSRFConfig
from litestar.enums import ScopeType
from litestar.middleware.base import DefineMiddleware
from litestar.middleware.csrf import CSRFMiddleware
from litestar.types import Receive, Scope, Send

__all__ = ["CSRF_COOKIE", "CSRF_HEADER", "BearerExemptCSRFMiddleware", "build_csrf_middleware"]

CSRF_COOKIE = "aicode_csrf"
CSRF_HEADER = "x-csrftoken"
# The JSON sign-in endpoints answer with a token in the body and set no cookie, so a forged request
# gains nothing; exempting them keeps `curl … /api/auth/login` working without a CSRF dance.
# Forge webhooks carry no cookie either: their signature is their authentication.
CSRF_EXEMPT_PATHS = ["^/api/auth/login$", "^/api/auth/setup$", "^/api/hooks/"]


class BearerExemptCSRFMiddleware(CSRFMiddleware):
    """Litestar's double-submit CSRF check, except for requests carrying an `Authorization` header."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP and any(name == b"authorization" for name, _ in scope["headers"]):
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def build_csrf_middleware(secret: str, *, secure: bool = False) -> DefineMiddleware:
    """The middleware to install after authentication (so a request without credentials still gets a 401)."""
    config = CSRFConfig(
        secret=secret, cookie_name=CSRF_COOKIE, header_name=CSRF_HEADER, cookie_httponly=True,
        cookie_samesite="lax", cookie_secure=secure, exclude=CSRF_EXEMPT_PATHS,
    )
    return DefineMiddleware(BearerExemptCSRFMiddleware, config=config)
