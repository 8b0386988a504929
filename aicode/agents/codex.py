"""OpenAI's Codex CLI driven headless (`codex exec --json`): its argv and environment, and its JSON lines
as the same events Claude Code's become.

Facts about the CLI (checked by running it): docs/codex-and-gemini.md in the shared docs. The model is
reached through a custom provider on the gateway's OpenAI route (`wire_api = "responses"`), given as
`-c` overrides so nothing is written into the task's config dir, which the agent itself can write.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from typing import Any

from aicode.agents.events import AgentEvent, TokenCount, TurnOutcome, cap_utf8, notice, tail_utf8, turn_completed
from aicode.agents.parsing import (
    NOTICE_MAX_BYTES,
    TOOL_OUTPUT_MAX_BYTES,
    JsonLinesParser,
    as_dict,
    as_int,
    as_list,
    as_str,
    capped_raw,
    count,
    readable_api_error,
)
from aicode.agents.turn import AgentTurn, ModelAccess

__all__ = ["CodexDriver", "CodexStreamParser"]

_STDERR_TAIL_BYTES = 2 * 1024
_ERROR_MAX_BYTES = 4 * 1024
# Gateway route of the OpenAI Responses API (see aicode.gateway.wires).
_GATEWAY_PREFIX = "/openai/v1"
_TOKEN_VARIABLE = "CODEX_GATEWAY_TOKEN"  # the custom provider's env_key
# Variables through which the CLI could reach a model other than through the gateway.
_MODEL_VARIABLES = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "CODEX_API_KEY", "OPENAI_ORGANIZATION", "OPENAI_PROJECT",
                    "AZURE_OPENAI_API_KEY", _TOKEN_VARIABLE)
# How Codex runs a command: `/bin/bash -lc '<the command>'`; the command itself is what people read.
_SHELL_WRAPPER = re.compile(r"^/bin/(?:ba)?sh -lc (.+)$", re.DOTALL)
# A file change's kind → the name Claude Code's tool for it has, so every agent's feed reads alike.
_FILE_TOOLS = {"add": "Write", "update": "Edit", "delete": "Delete"}


def _quoted(value: str) -> str:
    """A TOML string for a `-c key=value` override."""
    return json.dumps(value)


class CodexDriver:
    """Builds the `codex exec` command line and environment for a turn, and a parser for its output."""

    name = "codex"
    label = "OpenAI Codex"
    live = False  # one process per prompt: a session keeps only the container alive
    provider = "openai"
    executable = "codex"
    config_dir = "/home/agent/.codex"
    # The CLI's own default and its bundled models (`codex debug models --bundled`, 0.171.0), newest first.
    default_model: str | None = "gpt-6.2-sol"
    models: tuple[str, ...] = ("gpt-6.2-sol", "gpt-6.2-astra", "gpt-6.1-terra", "gpt-6.1-sol", "gpt-6-astra",
                               "gpt-6-sol", "gpt-6-luna", "gpt-5.6-sol", "gpt-5.6-terra", "gpt-5.6-luna", "gpt-5.5")

    def command(self, turn: AgentTurn, access: ModelAccess | None = None) -> list[str]:
        """`codex exec --json …` for a first turn, `codex exec resume --json … <thread>` for a follow-up."""
        argv = ["codex", "exec"]
        if turn.resume_session_id is not None:
            argv.append("resume")
        argv += ["--json", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox",
                 "-c", "check_for_update_on_startup=false", "-c", "analytics.enabled=false",
                 f"--model={turn.model or self.default_model}"]
        if access is not None:
            base_url = access.base_url.rstrip("/") + _GATEWAY_PREFIX
            argv += ["-c", 'model_provider="aicode"', "-c", 'model_providers.aicode.name="aicode gateway"',
                     "-c", f"model_providers.aicode.base_url={_quoted(base_url)}",
                     "-c", 'model_providers.aicode.wire_api="responses"',
                     "-c", f"model_providers.aicode.env_key={_quoted(_TOKEN_VARIABLE)}",
                     # Fail fast: the gateway's refusals are final, and a retry storm only delays the error.
                     "-c", "model_providers.aicode.request_max_retries=0",
                     "-c", "model_providers.aicode.stream_max_retries=0"]
        if turn.append_system_prompt is not None:
            argv += ["-c", f"developer_instructions={_quoted(turn.append_system_prompt)}"]
        if turn.resume_session_id is not None:
            argv.append(turn.resume_session_id)
        # After "--" a prompt such as "--help" is still the prompt.
        argv += ["--", turn.prompt]
        return argv

    def environment(self, access: ModelAccess | None, passthrough: Mapping[str, str], config_dir: str
                    ) -> dict[str, str]:
        """Pass-through variables without any model key, the capability token, and CODEX_HOME (the task's volume)."""
        env = {name: value for name, value in passthrough.items() if name.upper() not in _MODEL_VARIABLES}
        if access is not None:
            env[_TOKEN_VARIABLE] = access.token  # sent as a Bearer token; the gateway swaps in the real key
        env["CODEX_HOME"] = config_dir  # sessions live here, for `codex exec resume`
        return env

    def parser(self, turn: AgentTurn) -> CodexStreamParser:
        return CodexStreamParser(turn.model or self.default_model, turn.usage_before)


class CodexStreamParser(JsonLinesParser):
    """Turns `codex exec --json` lines into events; never raises on odd output, which is kept as notices."""

    def __init__(self, model: str | None = None, usage_before: TokenCount = TokenCount()) -> None:
        super().__init__()
        self._model = model
        self._usage_before = usage_before  # the thread's totals before this turn: a resume reports running totals
        self._thread_id: str | None = None
        self._started: set[str] = set()
        self._last_message: str | None = None
        self._last_error: str | None = None
        self._outcome: TurnOutcome | None = None
        self._finished = False
        self._handlers = {
            "thread.started": self._on_thread_started,
            "turn.started": lambda _obj: [],
            "item.started": self._on_item_started,
            "item.updated": lambda _obj: [],  # progress of an item whose completion follows
            "item.completed": self._on_item_completed,
            "turn.completed": self._on_turn_completed,
            "turn.failed": self._on_turn_failed,
            "error": self._on_error,
        }

    def finish(self, exit_code: int | None, stderr_tail: str) -> tuple[list[AgentEvent], TurnOutcome]:
        """Closing events and the outcome; a stream without `turn.completed` is a failed (or stopped) turn."""
        events: list[AgentEvent] = []
        code = "unknown" if exit_code is None else str(exit_code)
        if self._outcome is None:
            stderr = tail_utf8(stderr_tail.strip(), _STDERR_TAIL_BYTES)
            error = self._last_error or f"the agent exited (code {code}) without finishing its turn"
            if stderr and self._last_error is None:
                error += f": {stderr}"
            self._outcome = self._outcome_of(False, TokenCount(), cap_utf8(error, _ERROR_MAX_BYTES)[0])
            events.append(turn_completed(self._outcome))
        elif not self._finished and self._outcome.ok and exit_code not in (0, None):
            events.append(notice("warning", "exit_code", f"the agent finished its turn but exited with code {code}"))
        self._finished = True
        return events, self._outcome

    def _outcome_of(self, ok: bool, tokens: TokenCount, error: str | None) -> TurnOutcome:
        return TurnOutcome(
            ok=ok, session_id=self._thread_id, result_text=self._last_message, num_turns=None, duration_ms=None,
            cost_usd=None, input_tokens=tokens.input, output_tokens=tokens.output, cache_read_tokens=tokens.cache_read,
            cache_write_tokens=0, error=error,
        )

    def _on_thread_started(self, obj: dict[str, Any]) -> list[AgentEvent]:
        self._thread_id = as_str(obj.get("thread_id")) or self._thread_id
        data: dict[str, Any] = {"session_id": self._thread_id, "model": self._model, "cwd": "/workspace", "tools": [],
                "agent_version": None}
        return [AgentEvent("agent.started", data)]

    def _on_item_started(self, obj: dict[str, Any]) -> list[AgentEvent]:
        item = as_dict(obj.get("item"))
        call = _tool_call(item)
        if call is None:
            return []
        self._started.add(str(call.data["call_id"]))
        return [call]

    def _on_item_completed(self, obj: dict[str, Any]) -> list[AgentEvent]:
        item = as_dict(obj.get("item"))
        kind = as_str(item.get("type")) or as_str(item.get("item_type"))
        item_id = as_str(item.get("id"))
        if kind in ("agent_message", "reasoning"):
            text = as_str(item.get("text")) or ""
            if not text:
                return []
            if kind == "agent_message":
                self._last_message = text
            return [AgentEvent("message", {"message_id": item_id, "kind": "text" if kind == "agent_message"
                                           else "thinking", "text": text})]
        if kind == "file_change":
            return self._file_changes(item)
        if kind == "error":
            message = as_str(item.get("message")) or "the agent reported an error"
            return [notice("warning", "agent_warning", cap_utf8(message, NOTICE_MAX_BYTES)[0])]
        call = _tool_call(item)
        if call is None:
            return [notice("info", "unknown_item", f"unrecognised item {kind!r}", raw=capped_raw(item))]
        events = [] if call.data["call_id"] in self._started else [call]
        self._started.discard(str(call.data["call_id"]))
        return [*events, _tool_result(item, str(call.data["call_id"]))]

    def _file_changes(self, item: dict[str, Any]) -> list[AgentEvent]:
        """One Write/Edit/Delete call and result per changed file, as Claude Code reports its file tools."""
        item_id = as_str(item.get("id")) or "file_change"
        changes = [change for change in as_list(item.get("changes")) if isinstance(change, dict)]
        ok = item.get("status") != "failed"
        events: list[AgentEvent] = []
        for index, change in enumerate(changes):
            call_id = item_id if len(changes) == 1 else f"{item_id}.{index + 1}"
            kind = as_str(change.get("kind")) or "update"
            path = as_str(change.get("path"))
            events.append(AgentEvent("tool.call", {"call_id": call_id, "name": _FILE_TOOLS.get(kind, "Edit"),
                                                   "input": {"file_path": path, "kind": kind}}))
            events.append(AgentEvent("tool.result", {"call_id": call_id, "ok": ok, "truncated": False,
                                                     "output": f"{kind} {path}" if ok else f"failed to {kind} {path}"}))
        return events

    def _on_turn_completed(self, obj: dict[str, Any]) -> list[AgentEvent]:
        usage = as_dict(obj.get("usage"))
        total_input = count(usage, "input_tokens")
        cached = min(count(usage, "cached_input_tokens"), total_input)
        thread = TokenCount(input=total_input - cached, output=count(usage, "output_tokens"), cache_read=cached)
        tokens = _minus(thread, self._usage_before)
        self._outcome = self._outcome_of(True, tokens, None)
        return [AgentEvent("usage", tokens.as_data(cost_usd=None)), turn_completed(self._outcome)]

    def _on_turn_failed(self, obj: dict[str, Any]) -> list[AgentEvent]:
        message = as_str(as_dict(obj.get("error")).get("message")) or self._last_error or "the turn failed"
        message = readable_api_error(message)
        self._outcome = self._outcome_of(False, TokenCount(), cap_utf8(message, _ERROR_MAX_BYTES)[0])
        return [turn_completed(self._outcome)]

    def _on_error(self, obj: dict[str, Any]) -> list[AgentEvent]:
        # Also non-fatal ("Reconnecting… 1/5"): the turn's end says whether it was.
        message = readable_api_error(as_str(obj.get("message")) or "the agent reported an error")
        self._last_error = message
        return [notice("warning", "agent_error", cap_utf8(message, NOTICE_MAX_BYTES)[0])]


def _tool_call(item: dict[str, Any]) -> AgentEvent | None:
    """The `tool.call` of an item that is a tool (a command, an MCP call, a search, a plan); None otherwise."""
    kind = as_str(item.get("type")) or as_str(item.get("item_type"))
    call_id = as_str(item.get("id"))
    if kind == "command_execution":
        name, tool_input = "Bash", {"command": _command(item.get("command"))}
    elif kind == "mcp_tool_call":
        name = f"mcp__{item.get('server')}__{item.get('tool')}"
        tool_input = as_dict(item.get("arguments"))
    elif kind == "web_search":
        name, tool_input = "WebSearch", {"query": item.get("query")}
    elif kind == "todo_list":
        name, tool_input = "TodoWrite", {"todos": as_list(item.get("items"))}
    else:
        return None
    return AgentEvent("tool.call", {"call_id": call_id, "name": name, "input": tool_input})


def _command(value: Any) -> Any:
    """The command Codex ran, without the login-shell wrapper it puts around every one."""
    if not isinstance(value, str) or (wrapped := _SHELL_WRAPPER.match(value)) is None:
        return value
    try:
        words = shlex.split(wrapped.group(1))
    except ValueError:
        return value
    return words[0] if len(words) == 1 else value


def _tool_result(item: dict[str, Any], call_id: str) -> AgentEvent:
    kind = item.get("type") or item.get("item_type")
    status = item.get("status")
    data: dict[str, Any] = {"call_id": call_id}
    if kind == "command_execution":
        exit_code = as_int(item.get("exit_code"))
        output = as_str(item.get("aggregated_output")) or ""
        data["ok"] = status != "failed" and exit_code in (0, None)
        data["exit_code"] = exit_code
    elif kind == "mcp_tool_call":
        error = as_dict(item.get("error"))
        output = as_str(error.get("message")) or json.dumps(item.get("result"), ensure_ascii=False)
        data["ok"] = status != "failed" and not error
    else:
        output, data["ok"] = "", status != "failed"
    data["output"], data["truncated"] = cap_utf8(output, TOOL_OUTPUT_MAX_BYTES)
    return AgentEvent("tool.result", data)


def _minus(total: TokenCount, before: TokenCount) -> TokenCount:
    """This turn's share of a running total (never below zero: a total cannot shrink)."""
    return TokenCount(input=max(0, total.input - before.input), output=max(0, total.output - before.output),
                      cache_read=max(0, total.cache_read - before.cache_read),
                      cache_write=max(0, total.cache_write - before.cache_write))
