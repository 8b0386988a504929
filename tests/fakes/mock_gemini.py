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
import inspect
import itertools
import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

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


@dataclass(frozen=True)
class RecordedRequest:
    """A request other than :streamGenerateContent (side calls, token counts, unknown paths)."""

    method: str
    path: str
    query: str
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def _as_reply(response: Response) -> Reply | ApiError:
    if isinstance(response, (Reply, ApiError)):
        return response
    if isinstance(response, str):
        return reply(response)
    if isinstance(response, dict):
        return Reply([response])
    return reply(*response)


def _split(value: str, pieces: int = 3) -> list[str]:
    """Split a string into at least two non-empty pieces (when it has 2+ characters)."""
    if len(value) < 2:
        return [value]
    size = max(1, -(-len(value) // pieces))
    return [value[i:i + size] for i in range(0, len(value), size)]


def _estimate_tokens(value: Any) -> int:
    """Deterministic small token count: about 4 characters per token."""
    return max(1, len(json.dumps(value, separators=(",", ":"))) // 4)


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


class MockGemini:
    """A Gemini API mock listening on host:port (0 = any free port) in the current event loop.

    Each :streamGenerateContent call is answered by, in order of precedence: the next
    scripted reply (`script()`), else `responder(body)` if set and it returns something,
    else `default` (a "done" text; set it to `error(...)` to fail every request)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, responder: Responder | None = None,
                 default: Response = "done", side_responder: Responder | None = None) -> None:
        self.host = host
        self.port = port
        self.responder = responder
        self.default = default
        self.side_responder = side_responder
        self.requests: list[dict[str, Any]] = []  # JSON bodies of :streamGenerateContent, in order
        self.request_headers: list[dict[str, str]] = []  # their headers, same order
        self.request_models: list[str] = []  # the model named in each one's path
        self.other_requests: list[RecordedRequest] = []
        self.usages: list[dict[str, Any]] = []  # final usageMetadata of each streamed answer, in order
        self._script: list[Response] = []
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._received = asyncio.Condition()

    # -- script ---------------------------------------------------------------
    def script(self, responses: Iterable[Response]) -> None:
        """Queue replies, one per upcoming :streamGenerateContent request (appended to what is left)."""
        self._script.extend(responses)

    @property
    def remaining(self) -> int:
        """Scripted replies not yet used."""
        return len(self._script)

    async def wait_for_requests(self, count: int, timeout: float = 30.0) -> None:
        """Wait until at least `count` :streamGenerateContent requests have arrived."""
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

    async def _side_response(self, body: dict[str, Any]) -> Reply | ApiError:
        if self.side_responder is not None:
            answer = self.side_responder(body)
            if inspect.isawaitable(answer):
                answer = await answer
            if answer is not None:
                return _as_reply(answer)
        config = body.get("generationConfig") or {}
        schema = config.get("responseJsonSchema") or config.get("responseSchema")
        if schema or config.get("responseMimeType") == "application/json":
            return reply(json.dumps(_fill_schema(schema or {})))
        return reply("done")

    # -- lifecycle ------------------------------------------------------------
    @property
    def url(self) -> str:
        """The base URL for GOOGLE_GEMINI_BASE_URL (the CLI adds /v1beta/models/...)."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/{version}/models/{target}", self._models_handler)
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

    async def __aenter__(self) -> MockGemini:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- handlers -------------------------------------------------------------
    async def _models_handler(self, request: web.Request) -> web.StreamResponse:
        model, _, method = request.match_info["target"].rpartition(":")
        if method not in ("streamGenerateContent", "generateContent", "countTokens"):
            return await self._other_handler(request)
        body = await request.json()
        if method != "streamGenerateContent":
            self.other_requests.append(RecordedRequest(request.method, request.path, request.query_string, body,
                                                       dict(request.headers)))
            if method == "countTokens":
                contents = body.get("contents") or (body.get("generateContentRequest") or {}).get("contents", [])
                return web.json_response({"totalTokens": _estimate_tokens(contents)})
            answer = await self._side_response(body)
        else:
            async with self._received:
                self.requests.append(body)
                self.request_headers.append(dict(request.headers))
                self.request_models.append(model)
                self._received.notify_all()
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
        return await _stream(request, chunks, answer.chunk_delay)

    async def _other_handler(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        self.other_requests.append(RecordedRequest(request.method, request.path, request.query_string, body,
                                                   dict(request.headers)))
        return web.json_response({"error": {"code": 404, "message": f"Method not found: {request.path}",
                                            "status": "NOT_FOUND"}}, status=404)

    # -- the answer -----------------------------------------------------------
    def _chunks(self, body: dict[str, Any], model: str, answer: Reply) -> list[dict[str, Any]]:
        """The GenerateContentResponse chunks of one answer; the last carries finishReason."""
        pieces: list[Part] = []
        for part in answer.parts:
            if "text" in part:
                pieces.extend({**part, "text": piece} for piece in _split(part["text"]))
            else:
                pieces.append(part)
        prompt = _estimate_tokens(body.get("contents", []))
        response_id = f"mock-response-{next(self._ids):04d}"
        chunks: list[dict[str, Any]] = []
        candidates_tokens = thoughts_tokens = 0
        for index, part in enumerate(pieces or [text("")]):
            tokens = _estimate_tokens(part)
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


async def _stream(request: web.Request, chunks: list[dict[str, Any]], chunk_delay: float) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    try:
        await response.prepare(request)
        for chunk in chunks:
            await response.write(f"data: {json.dumps(chunk, separators=(',', ':'))}\r\n\r\n".encode())
            if chunk_delay:
                await asyncio.sleep(chunk_delay)
        await response.write_eof()
    except ConnectionError:
        pass  # the client went away (killed CLI): nothing to answer any more
    return response
