"""Gives every request an id (on each of its log lines and in `X-Request-ID`) and logs its outcome."""

from __future__ import annotations

import re
import time
import uuid
from contextvars import ContextVar

import structlog
from litestar.datastructures import MutableScopeHeaders
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from aicode.tracing import name_span_by_route

__all__ = ["CLIENT_ADDRESS", "RequestLogMiddleware"]

# The address of the client whose request is running (for the audit trail); None outside requests.
CLIENT_ADDRESS: ContextVar[str | None] = ContextVar("client_address", default=None)

log = structlog.get_logger("aicode.request")

# A client-supplied id is kept only when it looks like an id (it ends up in every log line).
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_QUIET_PATHS = ("/healthz", "/readyz")


class RequestLogMiddleware(ASGIMiddleware):
    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if scope["type"] not in ("http", "websocket"):
            await next_app(scope, receive, send)
            return
        supplied = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = supplied if _CLIENT_ID.match(supplied) else uuid.uuid4().hex
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableScopeHeaders.from_message(message)["X-Request-ID"] = request_id
            await send(message)

        client = scope.get("client")
        address = CLIENT_ADDRESS.set(client[0] if client else None)
        name_span_by_route(scope)
        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await next_app(scope, receive, send_with_id)
            except Exception as exc:
                # Refused in a middleware (authentication, the input guard): answered by the app's
                # exception handler further out, with the status the exception carries.
                status = status or getattr(exc, "status_code", 500)
                raise
            finally:
                CLIENT_ADDRESS.reset(address)
                if scope["path"] not in _QUIET_PATHS or status >= 400:
                    log.info(
                        "request",
                        method=scope.get("method", "WS"),
                        path=scope["path"],
                        status=status,
                        duration_ms=round((time.perf_counter() - started) * 1000, 1),
                    )
