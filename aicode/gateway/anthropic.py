"""The Anthropic listener: a capability token in, the turn's real credential upstream, the answer streamed back."""

from __future__ import annotations

import traceback
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import anyio
import structlog
from litestar import Litestar, Request, Response, route
from litestar.background_tasks import BackgroundTask
from litestar.enums import HttpMethod, MediaType
from litestar.exceptions import HTTPException
from litestar.response import Stream
from multidict import CIMultiDict
from yarl import URL

from aicode.gateway.metering import UsageMeter
from aicode.gateway.models import GatewayBackend, ModelCredential, TurnGrant
from aicode.gateway.prices import PriceTable

__all__ = ["MAX_REQUEST_BYTES", "REFUSAL_STATUS", "anthropic_error", "build_anthropic_gateway"]

log = structlog.get_logger(__name__)

MAX_REQUEST_BYTES = 32 * 1024 * 1024
# The status of a refused call (a spent budget): 402 `billing_error`. Measured against Claude Code
# 2.1.332: 402, 429, 403 and 401 with `x-should-retry: false` all end the run after one request in
# about a second, the message in its `result` line; but 403 and 401 are reported as "Failed to
# authenticate", 429 as "Request rejected" and, should the header be lost, a 429 is retried with
# backoff (7 requests in 45 s); 400 is re-sent with fewer beta features (6 requests). A 402 is given
# up on at once even without the header, and its text is just our reason.
REFUSAL_STATUS = 402
OAUTH_BETA = "oauth-2025-04-20"

_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                         "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"})
# The client's own credential (the capability token) never travels on; identity encoding lets the
# meter read the answer.
_NOT_FORWARDED = _HOP_BY_HOP | {"host", "content-length", "x-api-key", "authorization", "accept-encoding"}
# Upstream's cookies are of no use to an agent, and joining several into one header would garble them.
_NOT_RETURNED = _HOP_BY_HOP | {"content-length", "content-encoding", "set-cookie"}
_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
                403: "permission_error", 404: "not_found_error", 413: "request_too_large",
                429: "rate_limit_error", 529: "overloaded_error"}
# Blank lines first: they end whatever event was cut off, so this one is read on its own.
_BROKEN_STREAM = (b'\n\nevent: error\ndata: {"type":"error","error":{"type":"api_error","message":'
                  b'"aicode gateway: the connection to the model API broke mid-answer"}}\n\n')
_METHODS = [HttpMethod.GET, HttpMethod.POST, HttpMethod.PUT, HttpMethod.PATCH, HttpMethod.DELETE]


def anthropic_error(status: int, message: str, *, final: bool = False) -> Response[dict[str, object]]:
    """An error in the Messages API's shape; `final` adds `x-should-retry: false` so clients give up at once."""
    kind = _ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "api_error")
    body: dict[str, object] = {"type": "error", "error": {"type": kind, "message": f"aicode gateway: {message}"}}
    headers = {"x-should-retry": "false"} if final else {}
    return Response(body, status_code=status, headers=headers, media_type=MediaType.JSON)


def build_anthropic_gateway(backend: GatewayBackend, prices: PriceTable, upstream: str,
                            session: Callable[[], aiohttp.ClientSession]) -> Litestar:
    """The gateway app: every method on /v1/{path} forwarded to `upstream`; anything else a 404."""
    forwarder = _Forwarder(backend, prices, upstream.rstrip("/"), session)

    @route("/v1/{path:path}", http_method=_METHODS, name="anthropic_gateway")
    async def forward(request: Request[Any, Any, Any]) -> Response[Any]:
        return await forwarder.handle(request)

    return Litestar(
        route_handlers=[forward],
        exception_handlers={HTTPException: _http_error, Exception: _internal_error},
        request_max_body_size=MAX_REQUEST_BYTES,
        openapi_config=None,
        logging_config=None,
        debug=False,
    )


class _Forwarder:
    def __init__(self, backend: GatewayBackend, prices: PriceTable, upstream: str,
                 session: Callable[[], aiohttp.ClientSession]) -> None:
        self._backend = backend
        self._prices = prices
        self._upstream = upstream
        self._upstream_host = urlsplit(upstream).netloc or upstream
        self._session = session

    async def handle(self, request: Request[Any, Any, Any]) -> Response[Any]:
        token = _capability_token(request)
        grant = await self._backend.grant_for(token) if token else None
        if grant is None:
            return anthropic_error(401, "unknown or expired capability token (each task turn gets its own "
                                   "ANTHROPIC_API_KEY; it stops working when the turn ends)", final=True)
        if (reason := await self._backend.refusal_for(grant)) is not None:
            grant.refusal = reason
            log.warning("gateway.refused", task_id=str(grant.task_id), reason=reason)
            return anthropic_error(REFUSAL_STATUS, reason, final=True)
        credential = grant.credentials.get("anthropic")
        if credential is None:
            return anthropic_error(401, "the user who asked for this turn has no Anthropic credential: store an "
                                   "API key or OAuth token in account settings", final=True)
        raw_path = request.scope.get("raw_path") or request.scope["path"].encode()
        if any(segment in {".", ".."} for segment in raw_path.decode("latin-1").split("/")):
            return anthropic_error(404, "no such path")
        body = await request.body()
        return await self._forward(request, raw_path, body, grant, credential)

    async def _forward(self, request: Request[Any, Any, Any], raw_path: bytes, body: bytes, grant: TurnGrant,
                       credential: ModelCredential) -> Response[Any]:
        query = request.scope.get("query_string", b"").decode("latin-1")
        target = self._upstream + quote(raw_path.decode("latin-1"), safe="/%:@!$&'()*+,;=-._~")
        url = URL(target + (f"?{quote(query, safe='=&%+/:,;@!$()*~._-')}" if query else ""), encoded=True)
        headers = _upstream_headers(request.scope["headers"], credential)
        try:
            answer = await self._session().request(
                request.method, url, headers=headers, data=body, allow_redirects=False,
                skip_auto_headers=("Content-Type", "User-Agent"),
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("gateway.upstream_unreachable", task_id=str(grant.task_id), upstream=self._upstream_host,
                        error=type(exc).__name__)
            return anthropic_error(502, f"the model API at {self._upstream_host} could not be reached "
                                   f"({_describe(exc)})")
        relay = _Relay(answer, UsageMeter(self._prices), self._backend, grant)
        return Stream(relay.chunks(), status_code=answer.status, headers=_downstream_headers(answer.raw_headers),
                      background=BackgroundTask(relay.close))


class _Relay:
    """One upstream answer on its way back: metered as it passes, usage recorded once when it ends."""

    def __init__(self, answer: aiohttp.ClientResponse, meter: UsageMeter, backend: GatewayBackend,
                 grant: TurnGrant) -> None:
        self._answer = answer
        self._meter = meter
        self._backend = backend
        self._grant = grant
        self._closed = False

    async def chunks(self) -> AsyncIterator[bytes]:
        """The answer's bytes as they arrive (whatever size the network delivers them in)."""
        try:
            async for chunk in self._answer.content.iter_any():
                self._meter.feed(chunk)
                yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            # Upstream broke mid-answer. Raising would only make uvicorn log a traceback whose frames
            # hold request headers; an SSE `error` event is how the API itself reports a failed stream.
            log.warning("gateway.upstream_broke", task_id=str(self._grant.task_id), error=type(exc).__name__)
            if self._answer.content_type == "text/event-stream":
                yield _BROKEN_STREAM
        except BaseException:
            # The client went away while we waited on upstream (Litestar cancels the stream), or the
            # upstream broke: record what was used now, shielded, since the response's background
            # task may never run and the surrounding cancel scope would cancel every await.
            with anyio.CancelScope(shield=True):
                await self.close()
            raise

    async def close(self) -> None:
        """Release the upstream connection and record the usage (once; later calls do nothing)."""
        if self._closed:
            return
        self._closed = True
        if self._answer.content.at_eof():
            self._answer.release()
        else:
            self._answer.close()  # closing stops the generation we would otherwise still pay for
        usage = self._meter.finish()
        if usage is None:
            return
        try:
            await self._backend.record_usage(self._grant, usage)
        except Exception as exc:  # raised out of a finished response, uvicorn would log a traceback with its headers
            log.error("gateway.usage_not_recorded", task_id=str(self._grant.task_id), model=usage.model,
                      cost_usd=usage.cost_usd, error=repr(exc)[:500])


def _capability_token(request: Request[Any, Any, Any]) -> str:
    if token := request.headers.get("x-api-key", "").strip():
        return token
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def _connection_tokens(headers: Iterable[tuple[bytes, bytes]]) -> set[str]:
    """Header names a `Connection` header marks as hop-by-hop for this message."""
    return {token.strip().lower() for name, value in headers if name.lower() == b"connection"
            for token in value.decode("latin-1").split(",") if token.strip()}


def _upstream_headers(raw: Iterable[tuple[bytes, bytes]], credential: ModelCredential) -> CIMultiDict[str]:
    raw = list(raw)
    dropped = _NOT_FORWARDED | _connection_tokens(raw)
    headers: CIMultiDict[str] = CIMultiDict()
    betas: list[str] = []
    for name_bytes, value_bytes in raw:
        name, value = name_bytes.decode("latin-1").lower(), value_bytes.decode("latin-1")
        if name == "anthropic-beta":
            betas.extend(beta.strip() for beta in value.split(",") if beta.strip())
        elif name not in dropped:
            headers.add(name, value)
    headers["accept-encoding"] = "identity"
    if credential.kind == "oauth_token":
        headers["authorization"] = f"Bearer {credential.secret}"
        if OAUTH_BETA not in betas:
            betas.append(OAUTH_BETA)
    else:
        headers["x-api-key"] = credential.secret
    if betas:
        headers["anthropic-beta"] = ",".join(betas)
    return headers


def _downstream_headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    raw = list(raw)
    dropped = _NOT_RETURNED | _connection_tokens(raw)
    headers: dict[str, str] = {}
    for name_bytes, value_bytes in raw:
        name, value = name_bytes.decode("latin-1").lower(), value_bytes.decode("latin-1")
        if name not in dropped:
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def _describe(exc: BaseException) -> str:
    """A short cause for an upstream failure; aiohttp's messages name host and OS error, never headers."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return exc.os_error.strerror or type(exc.os_error).__name__
    if isinstance(exc, TimeoutError):
        return "connect timed out"
    return type(exc).__name__


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, object]]:
    messages = {404: "no such path", 413: f"request body larger than {MAX_REQUEST_BYTES // 2**20} MiB"}
    return anthropic_error(exc.status_code, messages.get(exc.status_code, exc.detail))


def _internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, object]]:
    # The stack without exc_info: a renderer that shows locals would print the request's headers.
    log.error("gateway.failed", path=request.url.path, error=repr(exc)[:500],
              stack="".join(traceback.format_tb(exc.__traceback__)))
    return anthropic_error(500, "internal error in the gateway; see the server log")
