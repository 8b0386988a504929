"""The plumbing that the scripted model-API mocks share (``mock_anthropic``, ``mock_openai``, ``mock_gemini``).

`ScriptedApiMock` runs an aiohttp server in the current event loop, keeps the queue of scripted replies,
records every request and wakes `wait_for_requests()`. A subclass brings only its API: the routes
(`_add_routes`), how a script entry becomes an answer (`_as_answer`), the answer to a path it does not
serve (`_answer_other`) and its wire format. The helpers below are the ones every wire format needs.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Self, TypeVar, cast

from aiohttp import web

__all__ = [
    "ApiResponder",
    "RecordedRequest",
    "ScriptedApiMock",
    "as_answer",
    "estimate_tokens",
    "split_text",
]

ResponseT = TypeVar("ResponseT")  # what a script, responder or default may hold (a module's `Response`)
AnswerT = TypeVar("AnswerT")  # what that becomes for the handler (a module's `Reply | ApiError`, ...)

ApiResponder = Callable[[dict[str, Any]], ResponseT | None | Awaitable[ResponseT | None]]


@dataclass(frozen=True)
class RecordedRequest:
    """A request the script does not answer (side calls, token counts, unknown paths)."""

    method: str
    path: str
    query: str
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def split_text(value: str, pieces: int = 3) -> list[str]:
    """Split a string into at least two non-empty pieces (when it has 2+ characters)."""
    if len(value) < 2:
        return [value]
    size = max(1, -(-len(value) // pieces))
    return [value[i:i + size] for i in range(0, len(value), size)]


def estimate_tokens(value: Any) -> int:
    """Deterministic small token count: about 4 characters per token."""
    return max(1, len(json.dumps(value, separators=(",", ":"))) // 4)


def as_answer(response: Any, kinds: tuple[type[Any], ...], reply: Callable[..., AnswerT]) -> AnswerT:
    """A script entry as its answer: one of `kinds` as it is, else `reply` of the text, item or items."""
    if isinstance(response, kinds):
        return cast(AnswerT, response)
    if isinstance(response, (str, dict)):
        return reply(response)
    return reply(*response)


class ScriptedApiMock(Generic[ResponseT, AnswerT]):
    """A model API mock listening on host:port (0 = any free port) in the current event loop.

    Each request to the API's scripted endpoint is answered by, in order of precedence: the next
    scripted reply (`script()`), else `responder(body)` if set and it returns something, else `default`."""

    def __init__(self, host: str, port: int, responder: ApiResponder[ResponseT] | None, default: ResponseT) -> None:
        self.host = host
        self.port = port
        self.responder = responder
        self.default = default
        self.requests: list[dict[str, Any]] = []  # JSON bodies of the scripted endpoint's requests, in order
        self.request_headers: list[dict[str, str]] = []  # their headers, same order
        self.other_requests: list[RecordedRequest] = []
        self._script: list[ResponseT] = []
        self._ids = itertools.count(1)  # numbers the ids an answer carries
        self._runner: web.AppRunner | None = None
        self._received = asyncio.Condition()

    # -- what a subclass defines ------------------------------------------------
    def _add_routes(self, router: web.UrlDispatcher) -> None:
        """Route the API's paths (everything else goes to `_other_handler`)."""
        raise NotImplementedError

    def _as_answer(self, response: ResponseT) -> AnswerT:
        """A script entry, responder result or default as the answer its handler sends."""
        raise NotImplementedError

    def _answer_other(self, request: web.Request) -> web.Response:
        """The answer to a path the API does not have (already recorded in `other_requests`)."""
        raise NotImplementedError

    # -- script -----------------------------------------------------------------
    def script(self, responses: Iterable[ResponseT]) -> None:
        """Queue replies, one per upcoming request to the scripted endpoint (appended to what is left)."""
        self._script.extend(responses)

    @property
    def remaining(self) -> int:
        """Scripted replies not yet used."""
        return len(self._script)

    async def wait_for_requests(self, count: int, timeout: float = 30.0) -> None:
        """Wait until at least `count` requests to the scripted endpoint have arrived."""
        async with asyncio.timeout(timeout):
            async with self._received:
                await self._received.wait_for(lambda: len(self.requests) >= count)

    async def _next_response(self, body: dict[str, Any]) -> AnswerT:
        if self._script:
            return self._as_answer(self._script.pop(0))
        answer = await self._ask(self.responder, body)
        return self._as_answer(self.default if answer is None else answer)

    async def _ask(self, responder: ApiResponder[ResponseT] | None, body: dict[str, Any]) -> ResponseT | None:
        """What `responder` answers to `body` (a sync or an async one); None when there is no responder."""
        if responder is None:
            return None
        answer = responder(body)
        if inspect.isawaitable(answer):
            return cast("ResponseT | None", await answer)
        return answer

    # -- lifecycle --------------------------------------------------------------
    @property
    def url(self) -> str:
        """The base URL, ``http://host:port``: each API's own paths (/v1/..., /v1beta/...) go below it."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        self._add_routes(app.router)
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

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- answering --------------------------------------------------------------
    async def _stream(self, request: web.Request, frames: Iterable[str], chunk_delay: float,
                      headers: Mapping[str, str]) -> web.StreamResponse:
        """Answer with server-sent events, each frame already in its API's framing, `chunk_delay` apart."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                               **headers})
        try:
            await response.prepare(request)
            for frame in frames:
                await response.write(frame.encode())
                if chunk_delay:
                    await asyncio.sleep(chunk_delay)
            await response.write_eof()
        except ConnectionError:
            pass  # the client went away (killed CLI): nothing to answer any more
        return response

    # -- recording --------------------------------------------------------------
    async def _receive(self, request: web.Request, body: dict[str, Any]) -> None:
        """Record a request to the scripted endpoint and wake `wait_for_requests()`."""
        async with self._received:
            self._record(request, body)
            self._received.notify_all()

    def _record(self, request: web.Request, body: dict[str, Any]) -> None:
        """Keep what the tests read of a scripted request (a subclass may keep more, under the same lock)."""
        self.requests.append(body)
        self.request_headers.append(dict(request.headers))

    def _record_other(self, request: web.Request, body: Any) -> None:
        """Keep a request the script does not answer, with its headers (a side call may carry a key)."""
        self.other_requests.append(RecordedRequest(request.method, request.path, request.query_string, body,
                                                   dict(request.headers)))

    async def _other_handler(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")  # not JSON: kept as text, for the test to see what came
        self._record_other(request, body)
        return self._answer_other(request)
