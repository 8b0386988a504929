"""A scripted mock of the OpenAI Responses API, served by aiohttp in the running event loop.

Point the REAL Codex CLI at it with a provider whose ``base_url`` is ``mock.url + "/v1"`` and
``wire_api = "responses"``. Every ``POST /v1/responses`` is answered with the next scripted reply,
streamed as Responses-API server-sent events exactly as the real API does (``response.created``,
``response.in_progress``, per output item ``response.output_item.added`` / its deltas /
``response.output_item.done``, then ``response.completed`` with the usage); once the script is
used up the answer is a short ``"done"`` message so a CLI never waits forever.

The tools are the ones Codex 0.171 declares for a classic model such as ``gpt-5.5``: the shell is the
function tool ``exec_command {"cmd": ...}`` (see `shell`) and ``apply_patch`` is a *custom*
(freeform) tool answered with a ``custom_tool_call`` item whose ``input`` is the patch text (see
`apply_patch`). The newer bundled models (``gpt-6.2-sol``, the default, and every other slug except
``gpt-5.5``) run in "code mode": their one tool is the custom tool ``exec`` taking JavaScript that
calls ``tools.exec_command(...)`` / ``tools.apply_patch(...)`` (see `code`). For such a request the
mock sends each scripted `shell` / `apply_patch` as the equivalent ``exec`` call, so one script
drives both kinds of model (the CLI prints the same ``command_execution`` / ``file_change`` items).

    async with MockOpenAI() as mock:
        mock.script([
            [apply_patch(add_file("notes.txt", "hi\\n"))],
            [shell("cat notes.txt")],
            "Wrote and read it.",
        ])
        ...  # run codex with model_providers.<id>.base_url = mock.url + "/v1"
        assert mock.requests[1]["input"][-1]["type"] == "custom_tool_call_output"
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import web

from tests.fakes.scripted_api import RecordedRequest, ScriptedApiMock, as_answer, estimate_tokens, split_text

__all__ = [
    "ApiError",
    "MockOpenAI",
    "RecordedRequest",
    "Reply",
    "Responder",
    "Response",
    "StreamFailure",
    "add_file",
    "apply_patch",
    "code",
    "custom_tool_call",
    "error",
    "failed",
    "function_call",
    "message",
    "reasoning",
    "reply",
    "shell",
]

Item = dict[str, Any]

# HTTP status -> (error.type, error.code) as the real API answers them.
_ERRORS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    402: ("invalid_request_error", "payment_required"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", None),
}
_call_ids = itertools.count(1)


def _call_id(given: str | None) -> str:
    return given or f"call_mock_{next(_call_ids):04d}"


def message(text: str) -> Item:
    """An assistant message item with one ``output_text`` part (Codex prints it as ``agent_message``)."""
    return {"type": "message", "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}


def reasoning(summary: str) -> Item:
    """A reasoning item with one summary text (Codex prints it as a ``reasoning`` item)."""
    return {"type": "reasoning", "summary": [{"type": "summary_text", "text": summary}]}


def function_call(name: str, arguments: dict[str, Any], call_id: str | None = None) -> Item:
    """A ``function_call`` item; the call id is generated (``call_mock_N``) unless given."""
    return {"type": "function_call", "name": name, "arguments": json.dumps(arguments), "call_id": _call_id(call_id)}


def custom_tool_call(name: str, input: str, call_id: str | None = None) -> Item:  # noqa: A002
    """A ``custom_tool_call`` item: a freeform tool's raw text input."""
    return {"type": "custom_tool_call", "name": name, "input": input, "call_id": _call_id(call_id)}


def shell(cmd: str, *, call_id: str | None = None, **args: Any) -> Item:
    """Codex's shell tool: ``exec_command {"cmd": ..., "workdir"?: ..., "yield_time_ms"?: ...}``."""
    return function_call("exec_command", {"cmd": cmd, **args}, call_id)


def apply_patch(patch: str, call_id: str | None = None) -> Item:
    """Codex's freeform ``apply_patch`` tool, with a patch in its grammar (see `add_file`)."""
    return custom_tool_call("apply_patch", patch, call_id)


def add_file(path: str, content: str) -> str:
    """An apply_patch patch that creates `path` (relative to the cwd, or absolute) holding `content`."""
    lines = content[:-1].split("\n") if content.endswith("\n") else content.split("\n")
    body = "".join(f"+{line}\n" for line in lines)
    return f"*** Begin Patch\n*** Add File: {path}\n{body}*** End Patch\n"


def code(javascript: str, call_id: str | None = None) -> Item:
    """The code-mode tool of the newer models: JavaScript calling ``tools.exec_command({cmd})`` etc."""
    return custom_tool_call("exec", javascript, call_id)


@dataclass(frozen=True)
class Reply:
    """One model answer: its output items, usage details and pacing."""

    items: Sequence[Item]
    delay: float = 0.0  # seconds before the response starts
    chunk_delay: float = 0.0  # seconds between SSE events (to observe streaming)
    cached_tokens: int = 0  # reported as usage.input_tokens_details.cached_tokens


@dataclass(frozen=True)
class ApiError:
    """An HTTP error answer with the API's JSON error body."""

    status: int
    message: str
    type: str
    code: str | None = None
    param: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class StreamFailure:
    """A 200 stream that ends in ``response.failed`` (the model failed mid-answer)."""

    message: str
    code: str = "server_error"
    delay: float = 0.0


def reply(*items: Item | str, delay: float = 0.0, chunk_delay: float = 0.0, cached_tokens: int = 0) -> Reply:
    """A Reply from items (a bare string is a `message`)."""
    return Reply([message(i) if isinstance(i, str) else i for i in items], delay, chunk_delay, cached_tokens)


def error(status: int = 401, message: str | None = None, *, type: str | None = None,  # noqa: A002
          code: str | None = None, param: str | None = None, headers: dict[str, str] | None = None,
          delay: float = 0.0) -> ApiError:
    """An HTTP error reply: ``{"error": {"message", "type", "param", "code"}}`` with that status."""
    kind, default_code = _ERRORS.get(status, ("api_error", None))
    return ApiError(status, message or f"mock error {status}", type or kind, code or default_code, param,
                    dict(headers or {}), delay)


def failed(message: str = "The server had an error while processing your request.", code: str = "server_error",
           delay: float = 0.0) -> StreamFailure:
    """A stream that fails after ``response.created`` with ``response.failed``."""
    return StreamFailure(message, code, delay)


Response = Reply | ApiError | StreamFailure | Sequence[Item] | Item | str
Responder = Callable[[dict[str, Any]], "Response | None | Awaitable[Response | None]"]


class MockOpenAI(ScriptedApiMock[Response, Reply | ApiError | StreamFailure]):
    """A Responses API mock listening on host:port (0 = any free port) in the current event loop.

    Each POST /v1/responses is answered by, in order of precedence: the next scripted
    reply (`script()`), else `responder(body)` if set and it returns something, else
    `default` (a "done" message; set it to `error(...)` to fail every request).
    The API is under ``url + "/v1"``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, responder: Responder | None = None,
                 default: Response = "done") -> None:
        super().__init__(host, port, responder, default)
        self.usages: list[dict[str, Any]] = []  # response.usage of each completed answer, in order

    def _add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/v1/responses", self._responses_handler)

    def _as_answer(self, response: Response) -> Reply | ApiError | StreamFailure:
        return as_answer(response, (Reply, ApiError, StreamFailure), reply)

    def _answer_other(self, request: web.Request) -> web.Response:
        text = f"Invalid URL ({request.method} {request.path})"
        return web.json_response({"error": {"message": text, "type": "invalid_request_error", "param": None,
                                            "code": None}}, status=404)

    # -- handlers -------------------------------------------------------------
    async def _responses_handler(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        await self._receive(request, body)
        request_id = f"req_mock_{len(self.requests):04d}"
        answer = await self._next_response(body)
        if answer.delay:
            await asyncio.sleep(answer.delay)
        if isinstance(answer, ApiError):
            payload = {"error": {"message": answer.message, "type": answer.type, "param": answer.param,
                                 "code": answer.code}}
            return web.json_response(payload, status=answer.status,
                                     headers={"x-request-id": request_id, **answer.headers})
        if isinstance(answer, Reply) and _code_mode(body):
            answer = replace(answer, items=[_as_code(item) for item in answer.items])
        response = self._response(body)
        if isinstance(answer, StreamFailure):
            events = _failure_events(response, answer)
            chunk_delay = 0.0
        else:
            events = self._events(body, response, answer)
            chunk_delay = answer.chunk_delay
        if not body.get("stream"):
            return web.json_response(events[-1]["response"], headers={"x-request-id": request_id})
        return await self._stream(request, _frames(events), chunk_delay,
                                  {"Content-Type": "text/event-stream; charset=utf-8", "x-request-id": request_id})

    # -- the answer -----------------------------------------------------------
    def _response(self, body: dict[str, Any]) -> dict[str, Any]:
        """The response object as ``response.created`` carries it (status in_progress, no output)."""
        return {
            "id": f"resp_mock_{next(self._ids):04d}", "object": "response", "created_at": int(time.time()),
            "status": "in_progress", "background": False, "error": None, "incomplete_details": None,
            "instructions": body.get("instructions"), "max_output_tokens": None, "max_tool_calls": None,
            "model": body.get("model", "gpt-mock"), "output": [],
            "parallel_tool_calls": body.get("parallel_tool_calls", True), "previous_response_id": None,
            "prompt_cache_key": body.get("prompt_cache_key"), "reasoning": body.get("reasoning"),
            "safety_identifier": None, "service_tier": "default", "store": body.get("store", False),
            "temperature": 1.0, "text": {"format": {"type": "text"}, **(body.get("text") or {})},
            "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools", []), "top_logprobs": 0,
            "top_p": 1.0, "truncation": "disabled", "usage": None, "user": None, "metadata": {},
        }

    def _events(self, body: dict[str, Any], response: dict[str, Any], answer: Reply) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = [{"type": "response.created", "response": response},
                                        {"type": "response.in_progress", "response": response}]
        output: list[Item] = []
        for index, item in enumerate(answer.items):
            done = self._completed_item(item)
            events.extend(_item_events(index, done))
            output.append(done)
        input_tokens = estimate_tokens(body.get("input", []))
        reasoning_tokens = sum(estimate_tokens(i) for i in output if i["type"] == "reasoning")
        output_tokens = sum(estimate_tokens(i) for i in output) or 1
        usage = {"input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": answer.cached_tokens},
                 "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
                 "total_tokens": input_tokens + output_tokens}
        self.usages.append(usage)
        events.append({"type": "response.completed",
                       "response": {**response, "status": "completed", "output": output, "usage": usage}})
        return events

    def _completed_item(self, item: Item) -> Item:
        """The item as output_item.done carries it: with an id and status."""
        prefix = {"message": "msg", "reasoning": "rs", "function_call": "fc", "custom_tool_call": "ctc"}
        done = {"id": f"{prefix.get(item['type'], 'item')}_mock_{next(self._ids):04d}", **item}
        if item["type"] == "reasoning":
            done.setdefault("encrypted_content", None)
        else:
            done.setdefault("status", "completed")
        return done


def _code_mode(body: dict[str, Any]) -> bool:
    """Whether the request comes from a code-mode model: no top-level exec_command, an ``exec`` tool instead."""
    if any(tool.get("name") == "exec_command" for tool in body.get("tools") or []):
        return False
    declared = [item.get("tools", []) for item in body.get("input", []) if item.get("type") == "additional_tools"]
    pending = [tool for tools in declared for tool in tools]
    while pending:
        tool = pending.pop()
        if tool.get("type") == "custom" and tool.get("name") == "exec":
            return True
        pending.extend(tool.get("tools", []))
    return False


def _as_code(item: Item) -> Item:
    """A `shell` or `apply_patch` item as the equivalent code-mode ``exec`` call (others unchanged)."""
    if item.get("type") == "function_call" and item.get("name") == "exec_command":
        javascript = f"const result = await tools.exec_command({item['arguments']});\ntext(result.output);"
    elif item.get("type") == "custom_tool_call" and item.get("name") == "apply_patch":
        javascript = f"text(await tools.apply_patch({json.dumps(item['input'])}));"
    else:
        return item
    return code(javascript, item["call_id"])


def _failure_events(response: dict[str, Any], failure: StreamFailure) -> list[dict[str, Any]]:
    failed_response = {**response, "status": "failed", "error": {"code": failure.code, "message": failure.message}}
    return [{"type": "response.created", "response": response},
            {"type": "response.in_progress", "response": response},
            {"type": "response.failed", "response": failed_response}]


def _frames(events: list[dict[str, Any]]) -> Iterator[str]:
    """The SSE frames of `events`, each numbered by its place in the stream (``sequence_number``)."""
    for number, event in enumerate(events):
        data = json.dumps({"type": event["type"], "sequence_number": number,
                           **{k: v for k, v in event.items() if k != "type"}}, separators=(",", ":"))
        yield f"event: {event['type']}\ndata: {data}\n\n"


def _item_events(index: int, item: Item) -> list[dict[str, Any]]:
    """The stream events that spell out one output item, from output_item.added to output_item.done."""
    kind, item_id = item["type"], item["id"]
    where = {"item_id": item_id, "output_index": index}
    if kind == "message":
        start: Item = {**item, "status": "in_progress", "content": []}
        middle = []
        for part_index, part in enumerate(item["content"]):
            at = {**where, "content_index": part_index}
            middle += [{"type": "response.content_part.added", **at, "part": {**part, "text": ""}},
                       *({"type": "response.output_text.delta", **at, "delta": piece, "logprobs": []}
                         for piece in split_text(part["text"])),
                       {"type": "response.output_text.done", **at, "text": part["text"], "logprobs": []},
                       {"type": "response.content_part.done", **at, "part": part}]
    elif kind == "reasoning":
        start = {**item, "summary": []}
        middle = []
        for summary_index, part in enumerate(item["summary"]):
            at = {**where, "summary_index": summary_index}
            middle += [{"type": "response.reasoning_summary_part.added", **at, "part": {**part, "text": ""}},
                       *({"type": "response.reasoning_summary_text.delta", **at, "delta": piece}
                         for piece in split_text(part["text"])),
                       {"type": "response.reasoning_summary_text.done", **at, "text": part["text"]},
                       {"type": "response.reasoning_summary_part.done", **at, "part": part}]
    elif kind == "function_call":
        start = {**item, "status": "in_progress", "arguments": ""}
        middle = [*({"type": "response.function_call_arguments.delta", **where, "delta": piece}
                    for piece in split_text(item["arguments"])),
                  {"type": "response.function_call_arguments.done", **where, "arguments": item["arguments"]}]
    elif kind == "custom_tool_call":
        start = {**item, "status": "in_progress", "input": ""}
        middle = [*({"type": "response.custom_tool_call_input.delta", **where, "delta": piece}
                    for piece in split_text(item["input"])),
                  {"type": "response.custom_tool_call_input.done", **where, "input": item["input"]}]
    else:
        start, middle = item, []
    return [{"type": "response.output_item.added", "output_index": index, "item": start}, *middle,
            {"type": "response.output_item.done", "output_index": index, "item": item}]
