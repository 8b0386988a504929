"""Claude Code driven headless: its argv and environment, and its stream-json output as normalized events.

The protocol is described in docs/claude-stream-json.md (shared docs); field lists there are
"at least these", so every field is read defensively and unknown ones are ignored.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aicode.agents.events import AgentEvent, TokenCount, TurnOutcome, cap_utf8, notice, tail_utf8, turn_completed
from aicode.agents.parsing import (
    NOTICE_MAX_BYTES,
    TOOL_OUTPUT_MAX_BYTES,
    JsonLinesParser,
    as_dict,
    as_float,
    as_int,
    as_list,
    as_str,
    capped_raw,
)
from aicode.agents.turn import AgentTurn, ModelAccess

__all__ = ["ClaudeDriver", "ClaudeStreamParser"]

_STDERR_TAIL_BYTES = 2 * 1024
_ERROR_MAX_BYTES = 4 * 1024

# Variables through which the CLI could reach a model other than through the gateway.
_MODEL_VARIABLES = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_BASE_URL")


class ClaudeDriver:
    """Builds the `claude` command line and environment for a turn, and a parser for its output."""

    name = "claude"
    label = "Claude Code"
    live = True  # one process for a whole session, prompts on stdin
    provider = "anthropic"
    executable = "claude"
    config_dir = "/home/agent/.claude"
    default_model: str | None = None  # the CLI's own default (its account's choice)
    models: tuple[str, ...] = ("sonnet", "opus", "haiku", "claude-sonnet-4-6", "claude-opus-4-6", "claude-haiku-4-5")

    def command(self, turn: AgentTurn, access: ModelAccess | None = None) -> list[str]:
        """The argv of `claude -p … --output-format stream-json --verbose` for `turn`."""
        # --include-partial-messages: text deltas for live viewers (never stored; see LIVE_ONLY).
        argv = ["claude", "-p", "--output-format", "stream-json", "--verbose", "--include-partial-messages"]
        if turn.live:
            argv.append("--input-format=stream-json")  # one user message per line on stdin, one turn each
        # Values go in the `--flag=value` form, so one starting with "-" is never taken for a flag.
        if turn.resume_session_id is not None:
            argv.append(f"--resume={turn.resume_session_id}")
        if turn.model is not None:
            argv.append(f"--model={turn.model}")
        if turn.max_turns is not None:
            argv.append(f"--max-turns={turn.max_turns}")
        if turn.permission_mode is None:
            argv.append("--dangerously-skip-permissions")
        else:
            argv.append(f"--permission-mode={turn.permission_mode}")
        if turn.append_system_prompt is not None:
            argv.append(f"--append-system-prompt={turn.append_system_prompt}")
        if turn.live:
            return argv
        # `-p` is a boolean flag and the prompt a positional argument: after "--" a prompt such as
        # "--help" or "-x" is still the prompt (checked against the real CLI 2.1.x; without "--" it
        # fails with "unknown option"). An argument rather than stdin keeps the exec a plain argv.
        argv += ["--", turn.prompt]
        return argv

    @staticmethod
    def user_message(prompt: str) -> bytes:
        """One prompt for a live session, as a stream-json input line."""
        line = {"type": "user", "message": {"role": "user", "content": prompt}}
        return json.dumps(line, ensure_ascii=False).encode() + b"\n"

    @staticmethod
    def interrupt_request(request_id: str) -> bytes:
        """The control request that stops the running turn (it then ends with an aborted result)."""
        line = {"type": "control_request", "request_id": request_id, "request": {"subtype": "interrupt"}}
        return json.dumps(line).encode() + b"\n"

    def environment(
        self, access: ModelAccess | None, passthrough: Mapping[str, str], config_dir: str
    ) -> dict[str, str]:
        """The agent's environment: pass-through variables, fixed settings, then the way to the gateway."""
        env = {name: value for name, value in passthrough.items() if name.upper() not in _MODEL_VARIABLES}
        if access is not None:
            # The CLI sends this "API key" as x-api-key; the gateway swaps in the real credential.
            env["ANTHROPIC_BASE_URL"] = access.base_url
            env["ANTHROPIC_API_KEY"] = access.token
        env["DISABLE_AUTOUPDATER"] = "1"
        env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] = "1"
        env["CLAUDE_CONFIG_DIR"] = config_dir  # the per-task volume that keeps sessions for --resume
        return env

    def parser(self, turn: AgentTurn) -> ClaudeStreamParser:
        """A fresh parser for one run of the command."""
        return ClaudeStreamParser()


class ClaudeStreamParser(JsonLinesParser):
    """Turns stream-json lines into events; never raises on odd output, which is kept as notices."""

    def __init__(self) -> None:
        super().__init__()
        self._session_id: str | None = None
        self._message_tokens: dict[str, TokenCount] = {}
        self._streaming_id: str | None = None  # the API message whose text deltas are arriving  # per API message id: its blocks repeat one usage
        self._outcome: TurnOutcome | None = None
        self._finished = False
        self._handlers = {
            "system": self._on_system,
            "assistant": self._on_assistant,
            "user": self._on_user,
            "result": self._on_result,
            "rate_limit_event": _on_rate_limit,
            "stream_event": self._on_stream_event,
        }

    def finish(self, exit_code: int | None, stderr_tail: str) -> tuple[list[AgentEvent], TurnOutcome]:
        """Closing events and the turn's outcome once the process has exited (call once, after the last line)."""
        stderr = tail_utf8(stderr_tail.strip(), _STDERR_TAIL_BYTES)
        code = "unknown" if exit_code is None else str(exit_code)
        events: list[AgentEvent] = []
        if self._outcome is None:
            error = f"the agent exited (code {code}) without a result line"
            if stderr:
                error += f": {stderr}"
            self._outcome = self._outcome_without_result(error)
            events.append(turn_completed(self._outcome))
        elif not self._finished and self._outcome.ok and exit_code not in (0, None):
            # The result line is the agent's own verdict on the work; a late non-zero exit does not undo it.
            message = f"the agent reported success but exited with code {code}"
            events.append(notice("warning", "exit_code", f"{message}: {stderr}" if stderr else message))
        self._finished = True
        return events, self._outcome

    def take_outcome(self) -> TurnOutcome | None:
        """The outcome of the turn whose result line came last, once (a live session's turns end one by one)."""
        outcome, self._outcome = self._outcome, None
        return outcome

    def _outcome_without_result(self, error: str) -> TurnOutcome:
        tokens = self._running_tokens()
        return TurnOutcome(
            ok=False, session_id=self._session_id, result_text=None, num_turns=None, duration_ms=None,
            cost_usd=None, input_tokens=tokens.input, output_tokens=tokens.output,
            cache_read_tokens=tokens.cache_read, cache_write_tokens=tokens.cache_write, error=error,
        )

    def _running_tokens(self) -> TokenCount:
        return sum(self._message_tokens.values(), TokenCount())

    def _on_stream_event(self, obj: dict[str, Any]) -> list[AgentEvent]:
        """Text as it is generated (`--include-partial-messages`), for live viewers only: the complete
        assistant line with the same text follows and is what is stored."""
        event = as_dict(obj.get("event"))
        kind = event.get("type")
        if kind == "message_start":
            self._streaming_id = as_str(as_dict(event.get("message")).get("id"))
        elif kind == "content_block_delta" and obj.get("parent_tool_use_id") is None:
            delta = as_dict(event.get("delta"))
            text = as_str(delta.get("text"))
            if delta.get("type") == "text_delta" and text:
                return [AgentEvent("message.delta", {"message_id": self._streaming_id, "text": text})]
        return []

    def _on_system(self, obj: dict[str, Any]) -> list[AgentEvent]:
        subtype = as_str(obj.get("subtype")) or "system"
        if subtype == "init":
            return self._on_init(obj)
        if subtype == "api_retry":
            return [notice("warning", "api_retry", _api_retry_text(obj))]
        if subtype == "compact_boundary":
            return [notice("info", "compaction", _compaction_text(obj))]
        return [notice("info", subtype, _summary(obj, subtype))]

    def _on_init(self, obj: dict[str, Any]) -> list[AgentEvent]:
        session_id = as_str(obj.get("session_id"))
        # The CLI may repeat init within one run; only a new session is news.
        if session_id is not None and session_id == self._session_id:
            return []
        self._session_id = session_id
        data = {
            "session_id": session_id,
            "model": as_str(obj.get("model")),
            "cwd": as_str(obj.get("cwd")),
            "tools": [tool for tool in as_list(obj.get("tools")) if isinstance(tool, str)],
            "agent_version": as_str(obj.get("claude_code_version")),
            "permission_mode": as_str(obj.get("permissionMode")),
        }
        return [AgentEvent("agent.started", data)]

    def _on_assistant(self, obj: dict[str, Any]) -> list[AgentEvent]:
        message = as_dict(obj.get("message"))
        message_id = as_str(message.get("id"))
        parent = as_str(obj.get("parent_tool_use_id"))
        error = obj.get("error")
        if error is not None:
            # The CLI wraps an API failure in a synthetic message whose text is the error:
            # report it once, as a notice, rather than as if the model had said it.
            text = _joined_text(message.get("content")) or f"the model API call failed ({error})"
            events = [notice("error", str(error), cap_utf8(text, NOTICE_MAX_BYTES)[0])]
        else:
            blocks = _blocks(message.get("content"))
            events = [event for block in blocks for event in _block_events(block, message_id, parent)]
        usage = message.get("usage")
        if message_id is not None and isinstance(usage, dict):
            events.extend(self._track_usage(message_id, TokenCount.from_usage(usage)))
        return events

    def _track_usage(self, message_id: str, tokens: TokenCount) -> list[AgentEvent]:
        before = self._running_tokens()
        previous = self._message_tokens.get(message_id)
        # Blocks of one message repeat its usage: keep one count per id (the largest seen), never a sum.
        self._message_tokens[message_id] = tokens if previous is None else previous.maximum(tokens)
        after = self._running_tokens()
        if after == before:
            return []
        return [AgentEvent("usage", after.as_data(cost_usd=None))]

    def _on_user(self, obj: dict[str, Any]) -> list[AgentEvent]:
        # Only tool results are news: other user content echoes prompts we sent or a sub-agent's
        # prompt, which is already visible in the Task tool call that started it.
        parent = as_str(obj.get("parent_tool_use_id"))
        events: list[AgentEvent] = []
        for block in _blocks(as_dict(obj.get("message")).get("content")):
            if block.get("type") != "tool_result":
                continue
            output, truncated = cap_utf8(_tool_output(block.get("content")), TOOL_OUTPUT_MAX_BYTES)
            data: dict[str, Any] = {
                "call_id": as_str(block.get("tool_use_id")),
                "ok": block.get("is_error") is not True,
                "output": output,
                "truncated": truncated,
            }
            if parent is not None:
                data["parent_tool_use_id"] = parent
            events.append(AgentEvent("tool.result", data))
        return events

    def _on_result(self, obj: dict[str, Any]) -> list[AgentEvent]:
        usage = obj.get("usage")
        tokens = TokenCount.from_usage(usage) if isinstance(usage, dict) else self._running_tokens()
        ok = _result_ok(obj)
        cost = as_float(obj.get("total_cost_usd"))
        self._session_id = as_str(obj.get("session_id")) or self._session_id
        self._outcome = TurnOutcome(
            ok=ok, session_id=self._session_id, result_text=as_str(obj.get("result")),
            num_turns=as_int(obj.get("num_turns")), duration_ms=as_int(obj.get("duration_ms")), cost_usd=cost,
            input_tokens=tokens.input, output_tokens=tokens.output, cache_read_tokens=tokens.cache_read,
            cache_write_tokens=tokens.cache_write, error=None if ok else _result_error(obj),
        )
        # One result ends one user turn; with several turns on stdin the next one counts afresh.
        self._message_tokens.clear()
        return [AgentEvent("usage", tokens.as_data(cost_usd=cost)), turn_completed(self._outcome)]


def _result_ok(obj: dict[str, Any]) -> bool:
    # is_error decides: API failures arrive as subtype "success" with is_error true. The subtype is
    # only a fallback for builds that leave is_error out.
    is_error = obj.get("is_error")
    if isinstance(is_error, bool):
        return not is_error
    return obj.get("subtype") == "success"


def _result_error(obj: dict[str, Any]) -> str:
    subtype = as_str(obj.get("subtype")) or "unknown"
    errors = "; ".join(str(item) for item in as_list(obj.get("errors")) if item)
    detail = errors or (as_str(obj.get("result")) or "").strip()
    status = obj.get("api_error_status")
    if status is not None:
        text = f"the model API answered {status}: {detail}" if detail else f"the model API answered {status}"
    elif subtype == "error_max_turns":
        text = f"stopped after reaching the turn limit ({as_int(obj.get('num_turns'))} turns)"
    elif subtype == "error_max_budget_usd":
        text = "stopped after reaching the spending limit"
    else:
        text = detail or f"the agent reported an error ({subtype})"
    return cap_utf8(text, _ERROR_MAX_BYTES)[0]


def _block_events(block: dict[str, Any], message_id: str | None, parent: str | None) -> list[AgentEvent]:
    kind = block.get("type")
    if kind in ("text", "thinking"):
        text = as_str(block.get(kind)) or ""
        if not text:  # e.g. thinking whose text the API withheld (only a signature): nothing to show
            return []
        data: dict[str, Any] = {"message_id": message_id, "kind": kind, "text": text}
    elif kind in ("tool_use", "server_tool_use"):
        data = {"call_id": as_str(block.get("id")), "name": as_str(block.get("name")), "input": block.get("input")}
    elif kind == "redacted_thinking":
        return []  # encrypted by the API: nothing readable to show
    else:
        return [notice("info", "unknown_block", f"unrecognised content block {kind!r}", raw=capped_raw(block))]
    if parent is not None:
        data["parent_tool_use_id"] = parent
    return [AgentEvent("tool.call" if kind.endswith("tool_use") else "message", data)]


def _on_rate_limit(obj: dict[str, Any]) -> list[AgentEvent]:
    info = as_dict(obj.get("rate_limit_info"))
    status = as_str(info.get("status")) or "unknown"
    message = f"rate limit {info.get('rateLimitType') or 'unknown'}: {status}"
    resets_at = as_int(info.get("resetsAt"))
    if resets_at is not None and 0 < resets_at < 2**37:
        message += f", resets at {datetime.fromtimestamp(resets_at, tz=UTC):%Y-%m-%d %H:%M} UTC"
    return [notice("info" if status == "allowed" else "warning", "rate_limit", message)]


def _api_retry_text(obj: dict[str, Any]) -> str:
    cause = " ".join(str(part) for part in (obj.get("error_status"), obj.get("error")) if part is not None)
    delay_ms = as_float(obj.get("retry_delay_ms"))
    delay = f" in {delay_ms / 1000:.1f} s" if delay_ms is not None else ""
    attempt = f"{obj.get('attempt')}/{obj.get('max_retries')}"
    return f"the model API call failed ({cause or 'unknown error'}); retry {attempt}{delay}"


def _compaction_text(obj: dict[str, Any]) -> str:
    meta = as_dict(obj.get("compact_metadata"))
    text = f"the conversation was compacted ({meta.get('trigger') or 'auto'})"
    tokens = as_int(meta.get("pre_tokens"))
    return f"{text}, {tokens} tokens before" if tokens is not None else text


def _summary(obj: dict[str, Any], subtype: str) -> str:
    """A one-line description of an informational system line (hooks, status, background tasks)."""
    for key in ("description", "summary", "hook_name", "status", "message"):
        value = obj.get(key)
        if isinstance(value, str) and value:
            return cap_utf8(f"{subtype}: {value}", NOTICE_MAX_BYTES)[0]
    return subtype


def _tool_output(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in _blocks(content):
        kind = block.get("type")
        # Images and other non-text results become a short placeholder: the UI shows text only.
        parts.append((as_str(block.get("text")) or "") if kind == "text" else f"[{kind or 'content'}]")
    return "\n".join(parts)


def _joined_text(content: Any) -> str:
    return "\n".join(as_str(block.get("text")) or "" for block in _blocks(content) if block.get("type") == "text").strip()


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [block for block in as_list(content) if isinstance(block, dict)]
