"""Security headers on every HTTP answer (API, pages, static files, errors, 404/405), set in one place."""

from __future__ import annotations

from litestar.datastructures import MutableScopeHeaders
from litestar.types import Message, Scope

__all__ = ["API_CONTENT_SECURITY_POLICY", "BASELINE_HEADERS", "HSTS", "add_security_headers"]

# JSON, text, diffs and patches are never meant to render as a page: if a browser is tricked into
# rendering one anyway, nothing in it may load, run or be framed. Pages send their own, looser policy.
API_CONTENT_SECURITY_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
BASELINE_HEADERS = {
    "Content-Security-Policy": API_CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
# Sent over https only (in-process TLS, or a proxy on this machine saying X-Forwarded-Proto: https):
# browsers then refuse plain http to this host for a year.
HSTS = "max-age=31536000"


async def add_security_headers(message: Message, scope: Scope) -> None:
    """A `before_send` hook: adds each baseline header the answer did not set itself.

    It edits only the response start, so streamed bodies (SSE) pass through untouched and unbuffered;
    WebSocket handshakes send no `http.response.start` and are left alone.
    """
    if message["type"] != "http.response.start":
        return
    headers = MutableScopeHeaders.from_message(message)
    for name, value in BASELINE_HEADERS.items():
        if headers.get(name) is None:
            headers[name] = value
    if scope.get("scheme") == "https" and headers.get("Strict-Transport-Security") is None:
        headers["Strict-Transport-Security"] = HSTS
