"""A scripted mock of the Anthropic Messages API, served by aiohttp in the running event loop.

Point a real Claude Code CLI at it with ``ANTHROPIC_BASE_URL=mock.url``. Every
``POST /v1/messages`` is answered with the next scripted reply, streamed as
Messages-API server-sent events exactly as the real API does (``message_start``,
``content_block_start`` / ``content_block_delta`` / ``content_block_stop`` per
block, ``message_delta``, ``message_stop``); once the script is used up the
answer is a short ``"done"`` text so a CLI never waits forever.

    async with MockAnthropic() as mock:
        mock.script([
            [tool_use("Write", {"file_path": "/workspace/a.txt", "content": "hi"})],
            [text("Wrote it.")],
        ])
        ...  # run the CLI with ANTHROPIC_BASE_URL=mock.url
        assert mock.requests[1]["messages"][-1]["content"][0]["type"] == "tool_result"
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

__all__ = [
    "ApiError",
    "MockAnthropic",
    "RecordedRequest",
    "Reply",
    "Responder",
    "Response",
    "error",
    "reply",
    "text",
    "thinking",
    "tool_use",
]

Block = dict[str, Any]

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_tool_ids = itertools.count(1)


def text(value: str) -> Block:
    """A text content block."""
    return {"type": "text", "text": value}


def thinking(value: str, signature: str = "mock-signature") -> Block:
    """A thinking content block (streamed as thinking_delta + signature_delta)."""
    return {"type": "thinking", "thinking": value, "signature": signature}


def tool_use(name: str, input: dict[str, Any], id: str | None = None) -> Block:  # noqa: A002
    """A tool_use content block; the id is generated (``toolu_mock_N``) unless given."""
    return {"type": "tool_use", "id": id or f"toolu_mock_{next(_tool_ids):04d}", "name": name, "input": input}


@dataclass(frozen=True)
class Reply:
    """One model answer: its blocks, stop reason (derived when None) and pacing."""

    blocks: Sequence[Block]
    stop_reason: str | None = None
    delay: float = 0.0  # seconds before the response starts
    chunk_delay: float = 0.0  # seconds between SSE events (to observe streaming)

    @property
    def effective_stop_reason(self) -> str:
        if self.stop_reason:
            return self.stop_reason
        return "tool_use" if any(b.get("type") == "tool_use" for b in self.blocks) else "end_turn"


@dataclass(frozen=True)
class ApiError:
    """An HTTP error answer with the API's JSON error body."""

    status: int
    message: str
    type: str
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


def reply(*blocks: Block | str, stop_reason: str | None = None, delay: float = 0.0,
          chunk_delay: float = 0.0) -> Reply:
    """A Reply from blocks (a bare string is a text block)."""
    return Reply([text(b) if isinstance(b, str) else b for b in blocks], stop_reason, delay, chunk_delay)


def error(status: int = 401, message: str | None = None, *, type: str | None = None,  # noqa: A002
          should_retry: bool | None = False, retry_after: float | None = None, delay: float = 0.0) -> ApiError:
    """An HTTP error reply with the API's JSON error body.

    By default it carries ``x-should-retry: false``, so the CLI gives up at once. Without
    it (``should_retry=None``) Claude Code retries even a 401 up to 10 times with
    exponential backoff (~3 minutes), emitting ``system/api_retry`` lines; a scripted
    error followed by a normal reply then tests a successful retry. A 400 is re-sent
    with fewer beta features whatever the header says (6 requests in 2.1.x): use
    ``MockAnthropic(default=error(400))`` to make the failure final."""
    headers: dict[str, str] = {}
    if should_retry is not None:
        headers["x-should-retry"] = "true" if should_retry else "false"
    if retry_after is not None:
        headers["retry-after"] = str(retry_after)
    kind = type or _ERROR_TYPES.get(status, "api_error")
    return ApiError(status, message or f"mock {kind}", kind, headers, delay)


Response = Reply | ApiError | Sequence[Block] | Block | str
Responder = Callable[[dict[str, Any]], "Response | None | Awaitable[Response | None]"]


@dataclass(frozen=True)
class RecordedRequest:
    """A request to a path other than /v1/messages."""

    method: str
    path: str
    query: str
    body: Any


def _as_reply(response: Response) -> Reply | ApiError:
    if isinstance(response, (Reply, ApiError)):
        return response
    if isinstance(response, str):
        return reply(response)
    if isinstance(response, dict):
        return Reply([response])
    return Reply(list(response))


def _split(value: str, pieces: int = 3) -> list[str]:
    """Split a string into at least two non-empty pieces (when it has 2+ characters)."""
    if len(value) < 2:
        return [value]
    size = max(1, -(-len(value) // pieces))
    return [value[i:i + size] for i in range(0, len(value), size)]


def _estimate_tokens(value: Any) -> int:
    """Deterministic small token count: about 4 characters per token."""
    return max(1, len(json.dumps(value, separators=(",", ":"))) // 4)


class MockAnthropic:
    """A Messages API mock listening on host:port (0 = any free port) in the current event loop.

    Each POST /v1/messages is answered by, in order of precedence: the next scripted
    reply (`script()`), else `responder(body)` if set and it returns something, else
    `default` (a "done" text; set it to `error(...)` to fail every request)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, responder: Responder | None = None,
                 default: Response = "done") -> None:
        self.host = host
        self.port = port
        self.responder = responder
        self.default = default
        self.requests: list[dict[str, Any]] = []  # JSON bodies of POST /v1/messages, in order
        self.request_headers: list[dict[str, str]] = []  # their headers, same order
        self.other_requests: list[RecordedRequest] = []
        self._script: list[Response] = []
        self._messages = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._received = asyncio.Condition()

    # -- script ---------------------------------------------------------------
    def script(self, responses: Iterable[Response]) -> None:
        """Queue replies, one per upcoming /v1/messages request (appended to what is left)."""
        self._script.extend(responses)

    @property
    def remaining(self) -> int:
        """Scripted replies not yet used."""
        return len(self._script)

    async def wait_for_requests(self, count: int, timeout: float = 30.0) -> None:
        """Wait until at least `count` /v1/messages requests have arrived."""
        async with asyncio.timeout(timeout):
            async with self._received:
                await self._received.wait_for(lambda: len(self.requests) >= count)

    async def _next_response(self, body: dict[str, Any]) -> Reply | ApiError:
        if self._script:
            return _as_reply(self._script.pop(0))
        if self.responder is not None:
            answer = self.responder(body)
            if inspect.isawaitable(answer):
                answer = await answer
            if answer is not None:
                return _as_reply(answer)
        return _as_reply(self.default)

    # -- lifecycle ------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/messages", self._messages_handler)
        app.router.add_post("/v1/messages/count_tokens", self._count_tokens_handler)
        app.router.add_route("*", "/{tail:.*}", self._other_handler)
        # A short shutdown_timeout: a CLI killed mid-stream must not hold up close().
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> MockAnthropic:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- handlers -------------------------------------------------------------
    async def _messages_handler(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        async with self._received:
            self.requests.append(body)
            self.request_headers.append(dict(request.headers))
            self._received.notify_all()
        answer = await self._next_response(body)
        if answer.delay:
            await asyncio.sleep(answer.delay)
        if isinstance(answer, ApiError):
            payload = {"type": "error", "error": {"type": answer.type, "message": answer.message}}
            headers = {"request-id": f"req_mock_{len(self.requests):04d}", **answer.headers}
            return web.json_response(payload, status=answer.status, headers=headers)
        message = self._message(body, answer)
        if not body.get("stream"):
            return web.json_response(message)
        return await self._stream(request, message, answer.chunk_delay)

    async def _count_tokens_handler(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.other_requests.append(RecordedRequest(request.method, request.path, request.query_string, body))
        return web.json_response({"input_tokens": _estimate_tokens(body.get("messages", []))})

    async def _other_handler(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        self.other_requests.append(RecordedRequest(request.method, request.path, request.query_string, body))
        return web.json_response({})

    # -- the answer -----------------------------------------------------------
    def _message(self, body: dict[str, Any], answer: Reply) -> dict[str, Any]:
        output_tokens = sum(_estimate_tokens(block) for block in answer.blocks) or 1
        return {
            "id": f"msg_mock_{next(self._messages):04d}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "claude-mock"),
            "content": [dict(block) for block in answer.blocks],
            "stop_reason": answer.effective_stop_reason,
            "stop_sequence": None,
            "usage": {
                "input_tokens": _estimate_tokens(body.get("messages", [])),
                "output_tokens": output_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        }

    async def _stream(self, request: web.Request, message: dict[str, Any], chunk_delay: float) -> web.StreamResponse:
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "request-id": f"req_mock_{len(self.requests):04d}",
        })
        try:
            await response.prepare(request)
            for event in _sse_events(message):
                data = json.dumps(event, separators=(",", ":"))
                await response.write(f"event: {event['type']}\ndata: {data}\n\n".encode())
                if chunk_delay:
                    await asyncio.sleep(chunk_delay)
            await response.write_eof()
        except ConnectionError:
            pass  # the client went away (killed CLI): nothing to answer any more
        return response


def _sse_events(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The Messages-API stream events that spell out `message`."""
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None,
             "usage": {**usage, "output_tokens": 1}}
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}, {"type": "ping"}]
    for index, block in enumerate(message["content"]):
        events.extend(_block_events(index, block))
    events.append({"type": "message_delta",
                   "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                   "usage": {"output_tokens": usage["output_tokens"]}})
    events.append({"type": "message_stop"})
    return events


def _block_events(index: int, block: Block) -> list[dict[str, Any]]:
    kind = block.get("type")
    if kind == "text":
        start: Block = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": piece} for piece in _split(block["text"], 2)]
    elif kind == "thinking":
        start = {"type": "thinking", "thinking": ""}
        deltas = [{"type": "thinking_delta", "thinking": piece} for piece in _split(block["thinking"], 2)]
        deltas.append({"type": "signature_delta", "signature": block.get("signature", "mock-signature")})
    elif kind == "tool_use":
        start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
        payload = json.dumps(block["input"])
        deltas = [{"type": "input_json_delta", "partial_json": piece} for piece in _split(payload)]
    else:
        return [{"type": "content_block_start", "index": index, "content_block": block},
                {"type": "content_block_stop", "index": index}]
    return [{"type": "content_block_start", "index": index, "content_block": start},
            *({"type": "content_block_delta", "index": index, "delta": delta} for delta in deltas),
            {"type": "content_block_stop", "index": index}]
