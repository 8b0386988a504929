"""A scripted mock of the Gemini API, served by aiohttp in the running event loop.

Point the REAL Gemini CLI at it with ``GOOGLE_GEMINI_BASE_URL=mock.url`` (and ``GEMINI_API_KEY``, sent
as ``x-goog-api-key``). Every ``POST /v1beta/models/<model>:streamGenerateContent?alt=sse`` is
answered with the next scripted reply, streamed as the real API does: ``data: <chunk>`` events, each a
``GenerateContentResponse`` (``candidates[0].content`` with ``role: "model"`` and a few ``parts``,
``usageMetadata``, ``modelVersion``, ``responseId``), text split over several chunks so the CLI gets
real deltas, and ``finishReason`` on the last chunk. Once the script is used up the answer is a short
``"done"`` text so a CLI never waits forever.

``:generateContent`` (the CLI's side calls: routing, next-speaker and loop checks, …) does not use
the script: it is answered by `side_responder` when set, else with a JSON object that fills the
requested ``responseJsonSchema`` (first enum value, "mock" strings), else a "done" text.
``:countTokens`` answers a deterministic estimate.

    async with MockGemini() as mock:
        mock.script([
            [write_file("notes.txt", "hi\\n")],
            [run_shell_command("cat notes.txt")],
            "Wrote and read it.",
        ])
        ...  # run gemini with GOOGLE_GEMINI_BASE_URL=mock.url
        assert "functionResponse" in mock.requests[1]["contents"][-1]["parts"][0]
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.scripted_api import RecordedRequest, ScriptedApiMock, as_answer, estimate_tokens, split_text

__all__ = [
    "ApiError",
    "MockGemini",
    "RecordedRequest",
    "Reply",
    "Responder",
    "Response",
    "error",
    "function_call",
    "reply",
    "run_shell_command",
    "text",
    "thought",
    "write_file",
]

Part = dict[str, Any]

# HTTP status -> google.rpc.Code name, as the real API reports them in error.status.
_STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def text(value: str) -> Part:
    """A text part."""
    return {"text": value}


def thought(value: str) -> Part:
    """A thought-summary part (``thought: true``), as sent when ``includeThoughts`` is on."""
    return {"text": value, "thought": True}


def function_call(name: str, args: dict[str, Any]) -> Part:
    """A ``functionCall`` part; the CLI gives each call an id of its own."""
    return {"functionCall": {"name": name, "args": args}}


def write_file(file_path: str, content: str) -> Part:
    """The CLI's ``write_file {file_path, content}`` tool (a relative path is taken from the project dir)."""
    return function_call("write_file", {"file_path": file_path, "content": content})


def run_shell_command(command: str, description: str = "Run a command", **args: Any) -> Part:
    """The CLI's ``run_shell_command {command, description, dir_path?, is_background?}`` tool."""
    return function_call("run_shell_command", {"command": command, "description": description, **args})


@dataclass(frozen=True)
class Reply:
    """One model answer: its parts, finish reason, usage details and pacing."""

    parts: Sequence[Part]
    finish_reason: str = "STOP"
    delay: float = 0.0  # seconds before the response starts
    chunk_delay: float = 0.0  # seconds between SSE chunks (to observe streaming)
    cached_tokens: int = 0  # reported as usageMetadata.cachedContentTokenCount when > 0


@dataclass(frozen=True)
class ApiError:
    """An HTTP error answer with Google's JSON error body."""

    status: int
    message: str
    status_name: str
    details: Sequence[dict[str, Any]] = ()
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


def reply(*parts: Part | str, finish_reason: str = "STOP", delay: float = 0.0, chunk_delay: float = 0.0,
          cached_tokens: int = 0) -> Reply:
    """A Reply from parts (a bare string is a text part)."""
    return Reply([text(p) if isinstance(p, str) else p for p in parts], finish_reason, delay, chunk_delay,
                 cached_tokens)


def error(status: int = 400, message: str | None = None, *, status_name: str | None = None,
          details: Sequence[dict[str, Any]] = (), headers: dict[str, str] | None = None,
          delay: float = 0.0) -> ApiError:
    """An HTTP error reply: ``{"error": {"code", "message", "status"}}`` with that HTTP status.

    The CLI retries 429 and 5xx with backoff unless ``general.maxAttempts`` is 1."""
    name = status_name or _STATUSES.get(status, "UNKNOWN")
    return ApiError(status, message or f"mock error {status}", name, tuple(details), dict(headers or {}), delay)


Response = Reply | ApiError | Sequence[Part] | Part | str
Responder = Callable[[dict[str, Any]], "Response | None | Awaitable[Response | None]"]


def _fill_schema(schema: dict[str, Any]) -> Any:
    """A value that satisfies a (simple) JSON schema: first enum value, "mock", the minimum (else 1)."""
    if "enum" in schema:
        return schema["enum"][0]
    kind = str(schema.get("type", "object")).lower()
    if kind == "object":
        properties = schema.get("properties", {})
        return {key: _fill_schema(properties.get(key, {})) for key in schema.get("required", properties)}
    if kind in ("integer", "number"):
        return schema.get("minimum", 1)  # scores such as the router's complexity_score start at 1
    return {"array": [], "string": "mock", "boolean": False}.get(kind)


class MockGemini(ScriptedApiMock[Response, Reply | ApiError]):
    """A Gemini API mock listening on host:port (0 = any free port) in the current event loop.

    Each :streamGenerateContent call is answered by, in order of precedence: the next
    scripted reply (`script()`), else `responder(body)` if set and it returns something,
    else `default` (a "done" text; set it to `error(...)` to fail every request).
    `url` is the base URL for GOOGLE_GEMINI_BASE_URL (the CLI adds /v1beta/models/...)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, responder: Responder | None = None,
                 default: Response = "done", side_responder: Responder | None = None) -> None:
        super().__init__(host, port, responder, default)
        self.side_responder = side_responder
        self.request_models: list[str] = []  # the model named in each scripted request's path
        self.usages: list[dict[str, Any]] = []  # final usageMetadata of each streamed answer, in order

    def _add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/{version}/models/{target}", self._models_handler)

    def _as_answer(self, response: Response) -> Reply | ApiError:
        return as_answer(response, (Reply, ApiError), reply)

    def _answer_other(self, request: web.Request) -> web.Response:
        return web.json_response({"error": {"code": 404, "message": f"Method not found: {request.path}",
                                            "status": "NOT_FOUND"}}, status=404)

    def _record(self, request: web.Request, body: dict[str, Any]) -> None:
        super()._record(request, body)
        self.request_models.append(request.match_info["target"].rpartition(":")[0])

    async def _side_response(self, body: dict[str, Any]) -> Reply | ApiError:
        answer = await self._ask(self.side_responder, body)
        if answer is not None:
            return self._as_answer(answer)
        config = body.get("generationConfig") or {}
        schema = config.get("responseJsonSchema") or config.get("responseSchema")
        if schema or config.get("responseMimeType") == "application/json":
            return reply(json.dumps(_fill_schema(schema or {})))
        return reply("done")

    # -- handlers -------------------------------------------------------------
    async def _models_handler(self, request: web.Request) -> web.StreamResponse:
        model, _, method = request.match_info["target"].rpartition(":")
        if method not in ("streamGenerateContent", "generateContent", "countTokens"):
            return await self._other_handler(request)
        body = await request.json()
        if method != "streamGenerateContent":
            self._record_other(request, body)
            if method == "countTokens":
                contents = body.get("contents") or (body.get("generateContentRequest") or {}).get("contents", [])
                return web.json_response({"totalTokens": estimate_tokens(contents)})
            answer = await self._side_response(body)
        else:
            await self._receive(request, body)
            answer = await self._next_response(body)
        if answer.delay:
            await asyncio.sleep(answer.delay)
        if isinstance(answer, ApiError):
            payload = {"error": {"code": answer.status, "message": answer.message, "status": answer.status_name,
                                 **({"details": list(answer.details)} if answer.details else {})}}
            return web.json_response(payload, status=answer.status, headers=answer.headers)
        chunks = self._chunks(body, model, answer)
        if method == "streamGenerateContent":
            self.usages.append(chunks[-1]["usageMetadata"])
        if method == "generateContent":
            return web.json_response(_whole(chunks, answer))
        if request.query.get("alt") != "sse":
            return web.json_response(chunks)  # without alt=sse the API answers one JSON array
        frames = (f"data: {json.dumps(chunk, separators=(',', ':'))}\r\n\r\n" for chunk in chunks)
        return await self._stream(request, frames, answer.chunk_delay, {})

    # -- the answer -----------------------------------------------------------
    def _chunks(self, body: dict[str, Any], model: str, answer: Reply) -> list[dict[str, Any]]:
        """The GenerateContentResponse chunks of one answer; the last carries finishReason."""
        pieces: list[Part] = []
        for part in answer.parts:
            if "text" in part:
                pieces.extend({**part, "text": piece} for piece in split_text(part["text"]))
            else:
                pieces.append(part)
        prompt = estimate_tokens(body.get("contents", []))
        response_id = f"mock-response-{next(self._ids):04d}"
        chunks: list[dict[str, Any]] = []
        candidates_tokens = thoughts_tokens = 0
        for index, part in enumerate(pieces or [text("")]):
            tokens = estimate_tokens(part)
            if part.get("thought"):
                thoughts_tokens += tokens
            else:
                candidates_tokens += tokens
            candidate: dict[str, Any] = {"content": {"role": "model", "parts": [part]}, "index": 0}
            if index == max(len(pieces), 1) - 1:
                candidate["finishReason"] = answer.finish_reason
            usage: dict[str, Any] = {"promptTokenCount": prompt, "candidatesTokenCount": candidates_tokens,
                                     "totalTokenCount": prompt + candidates_tokens + thoughts_tokens,
                                     "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}]}
            if answer.cached_tokens:
                usage["cachedContentTokenCount"] = answer.cached_tokens
            if thoughts_tokens:
                usage["thoughtsTokenCount"] = thoughts_tokens
            chunks.append({"candidates": [candidate], "usageMetadata": usage, "modelVersion": model,
                           "responseId": response_id})
        return chunks


def _whole(chunks: list[dict[str, Any]], answer: Reply) -> dict[str, Any]:
    """The non-streaming answer: the whole parts in one candidate, with the last chunk's usage."""
    last = chunks[-1]
    candidate = {**last["candidates"][0], "content": {"role": "model", "parts": list(answer.parts) or [text("")]}}
    return {**last, "candidates": [candidate]}
