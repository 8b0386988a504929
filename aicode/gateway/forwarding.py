"""The model gateway's HTTP app: a capability token in, the turn's real credential upstream, the answer
streamed back, for each provider's API under its own route prefix (see `aicode.gateway.wires`)."""

from __future__ import annotations

import traceback
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import aiohttp
import anyio
import structlog
from litestar import Litestar, Request, Response, route
from litestar.background_tasks import BackgroundTask
from litestar.enums import HttpMethod
from litestar.exceptions import HTTPException
from litestar.response import Stream
from multidict import CIMultiDict
from yarl import URL

from aicode.gateway.metering import Meter
from aicode.gateway.models import GatewayBackend, ModelCredential, TurnGrant
from aicode.gateway.prices import PriceTable
from aicode.gateway.wires import WIRES, Wire

__all__ = ["MAX_REQUEST_BYTES", "REFUSAL_STATUS", "build_gateway"]

log = structlog.get_logger(__name__)

MAX_REQUEST_BYTES = 32 * 1024 * 1024
# The status of a refused call (a spent budget): 402 `billing_error`. Measured against Claude Code
# 2.1.332: 402, 429, 403 and 401 with `x-should-retry: false` all end the run after one request in
# about a second, the message in its `result` line; but 403 and 401 are reported as "Failed to
# authenticate", 429 as "Request rejected" and, should the header be lost, a 429 is retried with
# backoff (7 requests in 45 s); 400 is re-sent with fewer beta features (6 requests). A 402 is given
# up on at once even without the header, and its text is just our reason. Codex (no retries configured)
# and Gemini (maxAttempts 1) give up on the first error of any kind.
REFUSAL_STATUS = 402

_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                         "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"})
# The client's own credential (the capability token) never travels on; identity encoding lets the
# meter read the answer.
_NOT_FORWARDED = _HOP_BY_HOP | {"host", "content-length", "x-api-key", "x-goog-api-key", "authorization",
                                "accept-encoding"}
# Upstream's cookies are of no use to an agent, and joining several into one header would garble them.
_NOT_RETURNED = _HOP_BY_HOP | {"content-length", "content-encoding", "set-cookie"}
# Blank lines first: they end whatever event was cut off, so this one is read on its own. Codex and the
# Gemini CLI report a stream that ends early as an error of their own.
_BROKEN_STREAM = (b'\n\nevent: error\ndata: {"type":"error","error":{"type":"api_error","message":'
                  b'"aicode gateway: the connection to the model API broke mid-answer"}}\n\n')
_METHODS = [HttpMethod.GET, HttpMethod.POST, HttpMethod.PUT, HttpMethod.PATCH, HttpMethod.DELETE]


def build_gateway(backend: GatewayBackend, prices: PriceTable, upstreams: Mapping[str, str],
                  session: Callable[[], aiohttp.ClientSession]) -> Litestar:
    """The gateway app: every method on each provider's prefix forwarded to its upstream; anything else a 404.

    `upstreams` maps a provider (anthropic, openai, gemini) to its API base; Anthropic's routes are the
    unprefixed `/v1/…`, so ANTHROPIC_BASE_URL is the gateway's bare address."""
    handlers = []
    for provider, upstream in upstreams.items():
        wire = WIRES[provider]
        forwarder = _Forwarder(backend, prices, wire, upstream.rstrip("/"), session)
        path = f"{wire.prefix}/{{path:path}}" if wire.prefix else "/v1/{path:path}"
        handlers.append(route(path, http_method=_METHODS, name=f"{provider}_gateway")(forwarder.handle))
    return Litestar(
        route_handlers=handlers,
        exception_handlers={HTTPException: _http_error, Exception: _internal_error},
        request_max_body_size=MAX_REQUEST_BYTES,
        openapi_config=None,
        logging_config=None,
        debug=False,
    )


class _Forwarder:
    def __init__(self, backend: GatewayBackend, prices: PriceTable, wire: Wire, upstream: str,
                 session: Callable[[], aiohttp.ClientSession]) -> None:
        self._backend = backend
        self._prices = prices
        self._wire = wire
        self._upstream = upstream
        self._upstream_host = urlsplit(upstream).netloc or upstream
        self._session = session

    async def handle(self, request: Request[Any, Any, Any]) -> Response[Any]:
        error = self._wire.error
        token = _capability_token(request)
        grant = await self._backend.grant_for(token) if token else None
        if grant is None:
            return error(401, "unknown or expired capability token (each task turn gets its own API key; it "
                         "stops working when the turn ends)", final=True)
        if (reason := await self._backend.refusal_for(grant)) is not None:
            grant.refusal = reason
            log.warning("gateway.refused", task_id=str(grant.task_id), reason=reason)
            return error(REFUSAL_STATUS, reason, final=True)
        credential = grant.credentials.get(self._wire.provider)
        if credential is None:
            return error(401, f"this turn has no {self._wire.label} credential: the turn's agent runs on another "
                         "provider's API", final=True)
        raw_path = request.scope.get("raw_path") or request.scope["path"].encode()
        if any(segment in {".", ".."} for segment in raw_path.decode("latin-1").split("/")):
            return error(404, "no such path")
        body = await request.body()
        return await self._forward(request, raw_path[len(self._wire.prefix):], body, grant, credential)

    async def _forward(self, request: Request[Any, Any, Any], path: bytes, body: bytes, grant: TurnGrant,
                       credential: ModelCredential) -> Response[Any]:
        query = _without_key(request.scope.get("query_string", b"").decode("latin-1"))
        target = self._upstream + quote(path.decode("latin-1"), safe="/%:@!$&'()*+,;=-._~")
        url = URL(target + (f"?{quote(query, safe='=&%+/:,;@!$()*~._-')}" if query else ""), encoded=True)
        headers = _upstream_headers(request.scope["headers"], self._wire.auth(credential))
        try:
            answer = await self._session().request(
                request.method, url, headers=headers, data=body, allow_redirects=False,
                skip_auto_headers=("Content-Type", "User-Agent"),
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("gateway.upstream_unreachable", task_id=str(grant.task_id), upstream=self._upstream_host,
                        error=type(exc).__name__)
            return self._wire.error(502, f"the model API at {self._upstream_host} could not be reached "
                                    f"({_describe(exc)})")
        meter = self._wire.meter(self._prices, _model_in_path(path))
        relay = _Relay(answer, meter, self._backend, grant, _BROKEN_STREAM if self._wire.provider == "anthropic" else b"")
        return Stream(relay.chunks(), status_code=answer.status, headers=_downstream_headers(answer.raw_headers),
                      background=BackgroundTask(relay.close))


class _Relay:
    """One upstream answer on its way back: metered as it passes, usage recorded once when it ends."""

    def __init__(self, answer: aiohttp.ClientResponse, meter: Meter, backend: GatewayBackend,
                 grant: TurnGrant, broken_stream: bytes) -> None:
        self._answer = answer
        self._meter = meter
        self._backend = backend
        self._grant = grant
        # What tells the client that upstream broke mid-answer, in its API's words (empty: just end).
        self._broken_stream = broken_stream
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
            if self._answer.content_type == "text/event-stream" and self._broken_stream:
                yield self._broken_stream
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
    """The token as each client sends its key: x-api-key (Claude Code), a Bearer token (Codex),
    x-goog-api-key or a `key` query parameter (Gemini)."""
    for header in ("x-api-key", "x-goog-api-key"):
        if token := request.headers.get(header, "").strip():
            return token
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.query_params.get("key", "").strip()


def _without_key(query: str) -> str:
    """The query string without a `key` parameter: a capability token never travels upstream."""
    if "key=" not in query:
        return query
    return urlencode([(name, value) for name, value in parse_qsl(query, keep_blank_values=True) if name != "key"])


def _model_in_path(path: bytes) -> str | None:
    """The model a Gemini API path names (`…/models/<model>:streamGenerateContent`), for its usage."""
    _, found, rest = path.decode("latin-1").partition("/models/")
    return rest.split(":", 1)[0] or None if found else None


def _connection_tokens(headers: Iterable[tuple[bytes, bytes]]) -> set[str]:
    """Header names a `Connection` header marks as hop-by-hop for this message."""
    return {token.strip().lower() for name, value in headers if name.lower() == b"connection"
            for token in value.decode("latin-1").split(",") if token.strip()}


def _upstream_headers(raw: Iterable[tuple[bytes, bytes]], auth: Mapping[str, str]) -> CIMultiDict[str]:
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
    for name, value in auth.items():
        if name == "anthropic-beta":  # joined with the client's own beta flags, never replacing them
            betas.extend(beta for beta in value.split(",") if beta not in betas)
        else:
            headers[name] = value
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
    return _wire_of(request).error(exc.status_code, messages.get(exc.status_code, exc.detail))


def _internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, object]]:
    # The stack without exc_info: a renderer that shows locals would print the request's headers.
    log.error("gateway.failed", path=request.url.path, error=repr(exc)[:500],
              stack="".join(traceback.format_tb(exc.__traceback__)))
    return _wire_of(request).error(500, "internal error in the gateway; see the server log")


def _wire_of(request: Request[Any, Any, Any]) -> Wire:
    """The provider whose route a request addressed, so even the gateway's own errors come in its shape."""
    path = request.scope["path"]
    return next((wire for wire in WIRES.values() if wire.prefix and path.startswith(wire.prefix + "/")),
                WIRES["anthropic"])
