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
import itertools
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.scripted_api import RecordedRequest, ScriptedApiMock, as_answer, estimate_tokens, split_text

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


class MockAnthropic(ScriptedApiMock[Response, Reply | ApiError]):
    """A Messages API mock listening on host:port (0 = any free port) in the current event loop.

    Each POST /v1/messages is answered by, in order of precedence: the next scripted
    reply (`script()`), else `responder(body)` if set and it returns something, else
    `default` (a "done" text; set it to `error(...)` to fail every request)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, responder: Responder | None = None,
                 default: Response = "done") -> None:
        super().__init__(host, port, responder, default)

    def _add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/v1/messages", self._messages_handler)
        router.add_post("/v1/messages/count_tokens", self._count_tokens_handler)

    def _as_answer(self, response: Response) -> Reply | ApiError:
        return as_answer(response, (Reply, ApiError), reply)

    def _answer_other(self, request: web.Request) -> web.Response:
        return web.json_response({})

    # -- handlers -------------------------------------------------------------
    async def _messages_handler(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        await self._receive(request, body)
        answer = await self._next_response(body)
        if answer.delay:
            await asyncio.sleep(answer.delay)
        request_id = f"req_mock_{len(self.requests):04d}"
        if isinstance(answer, ApiError):
            payload = {"type": "error", "error": {"type": answer.type, "message": answer.message}}
            headers = {"request-id": request_id, **answer.headers}
            return web.json_response(payload, status=answer.status, headers=headers)
        message = self._message(body, answer)
        if not body.get("stream"):
            return web.json_response(message)
        frames = (f"event: {event['type']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n"
                  for event in _sse_events(message))
        return await self._stream(request, frames, answer.chunk_delay, {"request-id": request_id})

    async def _count_tokens_handler(self, request: web.Request) -> web.Response:
        body = await request.json()
        self._record_other(request, body)
        return web.json_response({"input_tokens": estimate_tokens(body.get("messages", []))})

    # -- the answer -----------------------------------------------------------
    def _message(self, body: dict[str, Any], answer: Reply) -> dict[str, Any]:
        output_tokens = sum(estimate_tokens(block) for block in answer.blocks) or 1
        return {
            "id": f"msg_mock_{next(self._ids):04d}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "claude-mock"),
            "content": [dict(block) for block in answer.blocks],
            "stop_reason": answer.effective_stop_reason,
            "stop_sequence": None,
            "usage": {
                "input_tokens": estimate_tokens(body.get("messages", [])),
                "output_tokens": output_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        }


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
        deltas = [{"type": "text_delta", "text": piece} for piece in split_text(block["text"], 2)]
    elif kind == "thinking":
        start = {"type": "thinking", "thinking": ""}
        deltas = [{"type": "thinking_delta", "thinking": piece} for piece in split_text(block["thinking"], 2)]
        deltas.append({"type": "signature_delta", "signature": block.get("signature", "mock-signature")})
    elif kind == "tool_use":
        start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
        payload = json.dumps(block["input"])
        deltas = [{"type": "input_json_delta", "partial_json": piece} for piece in split_text(payload)]
    else:
        return [{"type": "content_block_start", "index": index, "content_block": block},
                {"type": "content_block_stop", "index": index}]
    return [{"type": "content_block_start", "index": index, "content_block": start},
            *({"type": "content_block_delta", "index": index, "delta": delta} for delta in deltas),
            {"type": "content_block_stop", "index": index}]
