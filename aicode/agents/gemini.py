"""Google's Gemini CLI driven headless (`gemini -o stream-json`): its argv and environment, and its JSON
lines as the same events Claude Code's become (its text deltas joined into whole messages).

Facts about the CLI (checked by running it): docs/codex-and-gemini.md in the shared docs. Its settings
file (the auth type a custom base URL needs, folder trust off so `--yolo` holds, no telemetry) is
written by the turn's own command inside the container, into the task's config dir.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aicode.agents.events import AgentEvent, TokenCount, TurnOutcome, cap_utf8, notice, tail_utf8, turn_completed
from aicode.agents.parsing import (
    NOTICE_MAX_BYTES,
    TOOL_OUTPUT_MAX_BYTES,
    JsonLinesParser,
    as_dict,
    as_int,
    as_str,
    count,
    readable_api_error,
)
from aicode.agents.turn import AgentTurn, ModelAccess

__all__ = ["HEADLESS_SETTINGS", "GeminiDriver", "GeminiStreamParser"]

_STDERR_TAIL_BYTES = 2 * 1024
_ERROR_MAX_BYTES = 4 * 1024
_GATEWAY_PREFIX = "/gemini"  # the gateway's Gemini API route (see aicode.gateway.wires)
_MODEL_VARIABLES = ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL", "GOOGLE_APPLICATION_CREDENTIALS",
                    "GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION", "GOOGLE_GENAI_USE_VERTEXAI",
                    "GOOGLE_GENAI_USE_GCA", "GOOGLE_VERTEX_BASE_URL")
HEADLESS_SETTINGS = json.dumps({
    "security": {"auth": {"selectedType": "gemini-api-key"}, "folderTrust": {"enabled": False}},
    "privacy": {"usageStatisticsEnabled": False},
    "telemetry": {"enabled": False},
    # One attempt: the gateway's refusals are final, and ~10 retries over minutes only delay the error.
    "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False, "maxAttempts": 1},
})
# Writes $1 as the settings file, then runs the rest: as the agent, inside its own sandbox.
_WITH_SETTINGS = ('mkdir -p "$GEMINI_CLI_HOME/.gemini" && printf "%s" "$1" > "$GEMINI_CLI_HOME/.gemini/settings.json"'
                  ' && shift && exec "$@"')
# Gemini's tools → the names Claude Code's tools have, so every agent's feed reads alike.
_TOOL_NAMES = {"write_file": "Write", "replace": "Edit", "run_shell_command": "Bash", "read_file": "Read",
               "read_many_files": "Read", "list_directory": "LS", "glob": "Glob", "search_file_content": "Grep",
               "grep": "Grep", "web_fetch": "WebFetch", "google_web_search": "WebSearch", "write_todos": "TodoWrite",
               "save_memory": "Memory"}
# Exit codes the CLI documents, for a run that ended without a result line.
_EXIT_CODES = {41: "authentication failed", 42: "invalid input (a follow-up must resume from the same folder)",
               44: "sandbox error", 52: "invalid configuration", 53: "turn limit reached", 130: "cancelled"}


class GeminiDriver:
    """Builds the `gemini` command line and environment for a turn, and a parser for its output."""

    name = "gemini"
    label = "Google Gemini CLI"
    live = False  # one process per prompt: a session keeps only the container alive
    provider = "gemini"
    executable = "gemini"
    config_dir = "/home/agent/.gemini-cli"
    # The CLI's DEFAULT_GEMINI_MODEL (0.61.0), then the models it accepts. Always named on the command line:
    # its "auto" mode first asks a small model to choose, a call of its own on every turn.
    default_model: str | None = "gemini-2.5-pro"
    models: tuple[str, ...] = ("gemini-2.5-pro", "gemini-3.1-pro-preview", "gemini-3-pro-preview", "gemini-3.8-flash",
                               "gemini-3.5-flash", "gemini-3-flash", "gemini-3.1-flash-lite", "gemini-3.5-flash-lite")

    def command(self, turn: AgentTurn, access: ModelAccess | None = None) -> list[str]:
        """`gemini -m MODEL -o stream-json --yolo [-r SESSION] --prompt=…`, after its settings file is written."""
        # -m always: without it the CLI first asks a small model which model to use.
        argv = ["gemini", f"--model={turn.model or self.default_model}", "--output-format=stream-json", "--yolo"]
        if turn.resume_session_id is not None:
            argv.append(f"--resume={turn.resume_session_id}")
        # The `--flag=value` form: a prompt starting with "-" is never taken for a flag.
        argv.append(f"--prompt={turn.prompt}")
        return ["sh", "-c", _WITH_SETTINGS, "aicode-gemini", HEADLESS_SETTINGS, *argv]

    def environment(self, access: ModelAccess | None, passthrough: Mapping[str, str], config_dir: str
                    ) -> dict[str, str]:
        """Pass-through variables without any model key, the gateway and token, GEMINI_CLI_HOME (the task's volume)."""
        env = {name: value for name, value in passthrough.items() if name.upper() not in _MODEL_VARIABLES}
        if access is not None:
            env["GOOGLE_GEMINI_BASE_URL"] = access.base_url.rstrip("/") + _GATEWAY_PREFIX
            env["GEMINI_API_KEY"] = access.token  # sent as x-goog-api-key; the gateway swaps in the real key
        env["GEMINI_CLI_HOME"] = config_dir  # sessions live here, for --resume
        env["GEMINI_CLI_NO_RELAUNCH"] = "true"  # one process: a relauncher would ignore SIGTERM
        return env

    def parser(self, turn: AgentTurn) -> GeminiStreamParser:
        return GeminiStreamParser()


class GeminiStreamParser(JsonLinesParser):
    """Turns `gemini -o stream-json` lines into events; never raises on odd output, which is kept as notices."""

    def __init__(self) -> None:
        super().__init__()
        self._session_id: str | None = None
        self._text: list[str] = []  # the assistant message being streamed, delta by delta
        self._messages = 0
        self._last_message: str | None = None
        self._last_error: str | None = None
        self._outcome: TurnOutcome | None = None
        self._finished = False
        self._handlers = {
            "init": self._on_init,
            "message": self._on_message,
            "tool_use": self._flushing(self._on_tool_use),
            "tool_result": self._flushing(self._on_tool_result),
            "result": self._flushing(self._on_result),
            "error": self._flushing(self._on_error),
        }

    def finish(self, exit_code: int | None, stderr_tail: str) -> tuple[list[AgentEvent], TurnOutcome]:
        """Closing events and the outcome; a stream without a `result` line is a failed (or stopped) turn."""
        events = self._flush()
        if self._outcome is None:
            error = self._last_error or _exit_reason(exit_code)
            stderr = tail_utf8(stderr_tail.strip(), _STDERR_TAIL_BYTES)
            if stderr and self._last_error is None:
                error += f": {stderr}"
            self._outcome = self._outcome_of(False, TokenCount(), None, cap_utf8(error, _ERROR_MAX_BYTES)[0])
            events.append(turn_completed(self._outcome))
        self._finished = True
        return events, self._outcome

    def _outcome_of(self, ok: bool, tokens: TokenCount, duration_ms: int | None, error: str | None) -> TurnOutcome:
        return TurnOutcome(
            ok=ok, session_id=self._session_id, result_text=self._last_message, num_turns=None,
            duration_ms=duration_ms, cost_usd=None, input_tokens=tokens.input, output_tokens=tokens.output,
            cache_read_tokens=tokens.cache_read, cache_write_tokens=0, error=error,
        )

    def _flushing(self, handler: Any) -> Any:
        """`handler`, after the message streamed so far is emitted whole."""
        return lambda obj: [*self._flush(), *handler(obj)]

    def _flush(self) -> list[AgentEvent]:
        if not self._text:
            return []
        text, self._text = "".join(self._text), []
        if not text.strip():
            return []
        self._messages += 1
        self._last_message = text
        return [AgentEvent("message", {"message_id": self._message_id(self._messages), "kind": "text", "text": text})]

    def _message_id(self, number: int) -> str:
        return f"{self._session_id or 'gemini'}-{number}"

    def _on_init(self, obj: dict[str, Any]) -> list[AgentEvent]:
        self._session_id = as_str(obj.get("session_id")) or self._session_id
        data: dict[str, Any] = {"session_id": self._session_id, "model": as_str(obj.get("model")), "cwd": "/workspace",
                "tools": [], "agent_version": None}
        return [AgentEvent("agent.started", data)]

    def _on_message(self, obj: dict[str, Any]) -> list[AgentEvent]:
        if obj.get("role") != "assistant":
            return []  # the echo of the prompt we sent
        content = as_str(obj.get("content")) or ""
        if obj.get("delta") is True:
            self._text.append(content)
            # Live viewers see the text as it comes; the whole message is stored once it is complete.
            return [AgentEvent("message.delta", {"message_id": self._message_id(self._messages + 1),
                                                 "text": content})] if content else []
        return [*self._flush(), *self._whole(content)]

    def _whole(self, content: str) -> list[AgentEvent]:
        self._text = [content]
        return self._flush()

    def _on_tool_use(self, obj: dict[str, Any]) -> list[AgentEvent]:
        tool = as_str(obj.get("tool_name")) or "unknown"
        data = {"call_id": as_str(obj.get("tool_id")), "name": _TOOL_NAMES.get(tool, tool),
                "input": as_dict(obj.get("parameters"))}
        return [AgentEvent("tool.call", data)]

    def _on_tool_result(self, obj: dict[str, Any]) -> list[AgentEvent]:
        error = as_dict(obj.get("error"))
        output = as_str(obj.get("output")) or as_str(error.get("message")) or ""
        capped, truncated = cap_utf8(output, TOOL_OUTPUT_MAX_BYTES)
        data: dict[str, Any] = {"call_id": as_str(obj.get("tool_id")), "ok": obj.get("status") == "success", "output": capped,
                "truncated": truncated}
        return [AgentEvent("tool.result", data)]

    def _on_result(self, obj: dict[str, Any]) -> list[AgentEvent]:
        stats = as_dict(obj.get("stats"))
        total_input = count(stats, "input_tokens")
        cached = min(count(stats, "cached"), total_input)
        tokens = TokenCount(input=total_input - cached, output=count(stats, "output_tokens"), cache_read=cached)
        ok = obj.get("status") == "success"
        error = None
        if not ok:
            detail = as_str(as_dict(obj.get("error")).get("message")) or self._last_error or "the turn failed"
            detail = readable_api_error(detail)
            error = cap_utf8(detail, _ERROR_MAX_BYTES)[0]
        self._outcome = self._outcome_of(ok, tokens, as_int(stats.get("duration_ms")), error)
        return [AgentEvent("usage", tokens.as_data(cost_usd=None)), turn_completed(self._outcome)]

    def _on_error(self, obj: dict[str, Any]) -> list[AgentEvent]:
        message = readable_api_error(as_str(obj.get("message")) or "the agent reported an error")
        level = "error" if obj.get("severity") == "error" else "warning"
        if level == "error":
            self._last_error = message
        return [notice(level, "agent_error", cap_utf8(message, NOTICE_MAX_BYTES)[0])]


def _exit_reason(exit_code: int | None) -> str:
    """Why the CLI stopped without a result line, from its exit code (an HTTP status modulo 256 on API errors)."""
    if exit_code is None:
        return "the agent stopped without finishing its turn"
    if exit_code in _EXIT_CODES:
        return f"the agent exited (code {exit_code}): {_EXIT_CODES[exit_code]}"
    if 144 <= exit_code <= 255:  # 400…511 modulo 256
        return f"the agent exited (code {exit_code}): the model API answered HTTP {exit_code + 256}"
    return f"the agent exited (code {exit_code}) without finishing its turn"
