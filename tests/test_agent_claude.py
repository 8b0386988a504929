"""The Claude Code driver: argv and environment building, line splitting, and stream-json → events.

Sample lines follow the shapes the real CLI (2.1.x) printed against a local mock of the Messages API.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from aicode.agents import claude as claude_module
from aicode.agents.claude import ClaudeDriver, ClaudeStreamParser
from aicode.agents.events import AgentEvent
from aicode.agents.lines import Line, LineSplitter
from aicode.agents.turn import AgentTurn, ModelAccess

SESSION = "9ffe1016-541a-4edb-91d1-917193cffb21"


# ---------------------------------------------------------------- sample lines


def init_line(session_id: str = SESSION) -> dict[str, Any]:
    return {
        "type": "system", "subtype": "init", "cwd": "/workspace", "session_id": session_id,
        "tools": ["Task", "Bash", "Edit", "Read", "Write"], "mcp_servers": [], "model": "claude-sonnet-4-5",
        "permissionMode": "bypassPermissions", "apiKeySource": "ANTHROPIC_API_KEY",
        "claude_code_version": "2.1.332", "uuid": "aef0c85a-abc9-4834-b572-6a036d2597dd",
    }


def usage(input_tokens: int = 120, output_tokens: int = 1, read: int = 200, write: int = 50) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens, "output_tokens": output_tokens,
        "cache_creation_input_tokens": write, "cache_read_input_tokens": read,
    }


def assistant_line(block: dict[str, Any], message_id: str = "msg_01", **extra: Any) -> dict[str, Any]:
    message = {
        "id": message_id, "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [block], "stop_reason": None, "stop_sequence": None, "usage": extra.pop("usage", usage()),
    }
    return {"type": "assistant", "message": message, "parent_tool_use_id": None, "session_id": SESSION, **extra}


def text_block(text: str = "I'll run a command.") -> dict[str, Any]:
    return {"type": "text", "text": text}


def tool_use_block() -> dict[str, Any]:
    command = {"command": "echo hi", "description": "say hi"}
    return {"type": "tool_use", "id": "toolu_01", "name": "Bash", "input": command}


def tool_result_line(content: Any, is_error: bool = False) -> dict[str, Any]:
    block = {"type": "tool_result", "content": content, "is_error": is_error, "tool_use_id": "toolu_01"}
    return {
        "type": "user", "message": {"role": "user", "content": [block]}, "parent_tool_use_id": None,
        "session_id": SESSION, "tool_use_result": "hi",
    }


def result_line(**fields: Any) -> dict[str, Any]:
    line = {
        "type": "result", "subtype": "success", "is_error": False, "duration_ms": 412, "duration_api_ms": 56,
        "num_turns": 2, "result": "Done: the file says hi.", "stop_reason": "end_turn", "session_id": SESSION,
        "total_cost_usd": 0.0033, "usage": usage(420, 52, 400, 100), "terminal_reason": "completed",
    }
    line.update(fields)
    return line


def api_error_result(status: int = 401) -> dict[str, Any]:
    return result_line(
        is_error=True, api_error_status=status, api_error_type="authentication_error", terminal_reason="api_error",
        result="Invalid API key · Please run /login", num_turns=1, total_cost_usd=0, usage=usage(0, 0, 0, 0),
    )


def as_line(obj: Any) -> Line:
    return Line(json.dumps(obj), False)


def feed(parser: ClaudeStreamParser, *objs: Any) -> list[AgentEvent]:
    return [event for obj in objs for event in parser.feed(as_line(obj))]


def only(events: list[AgentEvent], event_type: str) -> list[dict[str, Any]]:
    return [event.data for event in events if event.type == event_type]


@pytest.fixture
def parser() -> ClaudeStreamParser:
    return ClaudeStreamParser()


# ---------------------------------------------------------------- LineSplitter


def test_splitter_joins_a_line_split_across_chunks() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b'{"type":') == []
    assert splitter.feed(b'"result"}\n') == [Line('{"type":"result"}', False)]


def test_splitter_returns_every_line_of_one_chunk() -> None:
    assert LineSplitter().feed(b"one\ntwo\n\nthree\n") == [Line(t, False) for t in ("one", "two", "", "three")]


def test_splitter_decodes_a_multibyte_character_split_across_chunks() -> None:
    splitter = LineSplitter()
    encoded = "héllo €".encode()
    assert splitter.feed(encoded[:2]) == []  # "h" and the first byte of "é"
    assert splitter.feed(encoded[2:-1]) == []  # ends inside "€"
    assert splitter.feed(encoded[-1:] + b"\n") == [Line("héllo €", False)]


def test_splitter_strips_the_carriage_return_of_crlf() -> None:
    assert LineSplitter().feed(b"a\r\nb\r\n") == [Line("a", False), Line("b", False)]


def test_splitter_replaces_invalid_utf8() -> None:
    assert LineSplitter().feed(b"bad \xff byte\n") == [Line("bad \ufffd byte", False)]


def test_splitter_flush_returns_the_trailing_partial_line() -> None:
    splitter = LineSplitter()
    splitter.feed(b"done\npartial")
    assert splitter.flush() == [Line("partial", False)]


def test_splitter_flush_returns_nothing_after_a_final_newline() -> None:
    splitter = LineSplitter()
    splitter.feed(b"done\n")
    assert splitter.flush() == []


def test_splitter_cuts_an_over_long_line_and_marks_it_truncated() -> None:
    assert LineSplitter(max_line_bytes=4).feed(b"abcdefgh\n") == [Line("abcd", True)]


def test_splitter_reads_normal_lines_after_a_truncated_one() -> None:
    lines = LineSplitter(max_line_bytes=4).feed(b"abcdefgh\nok\n")
    assert lines[1] == Line("ok", False)


def test_splitter_does_not_mark_a_line_of_exactly_the_cap_with_crlf_truncated() -> None:
    assert LineSplitter(max_line_bytes=4).feed(b"abcd\r\n") == [Line("abcd", False)]


def test_splitter_truncated_line_does_not_end_in_a_broken_character() -> None:
    # The cap (4 bytes) falls inside "€" (3 bytes starting at byte 2).
    assert LineSplitter(max_line_bytes=4).feed("ab€cd\n".encode()) == [Line("ab", True)]


def test_splitter_memory_stays_bounded_for_a_5mb_line_without_newline() -> None:
    splitter = LineSplitter()  # 1 MiB cap
    chunk = b"x" * 65536
    high_water = 0
    for _ in range(80):  # 5 MiB
        assert splitter.feed(chunk) == []
        high_water = max(high_water, splitter.buffered_bytes)
    assert high_water <= 1024 * 1024 + 1
    [line] = splitter.flush()
    assert line.truncated and len(line.text) == 1024 * 1024


def test_splitter_discards_the_rest_of_a_long_line_until_its_newline() -> None:
    splitter = LineSplitter(max_line_bytes=8)
    splitter.feed(b"0123456789")
    splitter.feed(b"more of the same line")
    assert splitter.feed(b"tail\nnext\n") == [Line("01234567", True), Line("next", False)]


# ---------------------------------------------------------------- argv


def test_command_starts_headless_with_stream_json_and_verbose() -> None:
    argv = ClaudeDriver().command(AgentTurn(prompt="fix the bug"))
    assert argv[:5] == ["claude", "-p", "--output-format", "stream-json", "--verbose"]


def test_command_ends_with_the_prompt_after_end_of_options() -> None:
    assert ClaudeDriver().command(AgentTurn(prompt="fix the bug"))[-2:] == ["--", "fix the bug"]


def test_command_passes_a_prompt_starting_with_a_dash_as_the_prompt() -> None:
    argv = ClaudeDriver().command(AgentTurn(prompt="--help me"))
    assert argv.index("--help me") == argv.index("--") + 1


def test_command_resumes_with_the_equals_form() -> None:
    argv = ClaudeDriver().command(AgentTurn(prompt="go on", resume_session_id=SESSION))
    assert f"--resume={SESSION}" in argv and "--resume" not in argv


def test_command_has_no_optional_flags_when_unset() -> None:
    argv = ClaudeDriver().command(AgentTurn(prompt="go"))
    flags = ("--resume", "--model", "--max-turns", "--append-system-prompt", "--permission-mode")
    assert not [arg for arg in argv if arg.startswith(flags)]


def test_command_sets_model_and_max_turns() -> None:
    argv = ClaudeDriver().command(AgentTurn(prompt="go", model="claude-sonnet-4-5", max_turns=7))
    assert "--model=claude-sonnet-4-5" in argv and "--max-turns=7" in argv


def test_command_skips_permissions_when_no_mode_is_given() -> None:
    argv = ClaudeDriver().command(AgentTurn(prompt="go"))
    assert "--dangerously-skip-permissions" in argv


def test_command_uses_the_permission_mode_instead_of_skipping() -> None:
    argv = ClaudeDriver().command(AgentTurn(prompt="go", permission_mode="acceptEdits"))
    assert "--permission-mode=acceptEdits" in argv and "--dangerously-skip-permissions" not in argv


def test_command_keeps_an_appended_system_prompt_in_one_argument() -> None:
    argv = ClaudeDriver().command(AgentTurn(prompt="go", append_system_prompt="- be terse"))
    assert "--append-system-prompt=- be terse" in argv


def test_turn_rejects_an_empty_prompt() -> None:
    with pytest.raises(ValueError, match="prompt"):
        AgentTurn(prompt="  ")


def test_turn_rejects_a_nul_character() -> None:
    with pytest.raises(ValueError, match="NUL"):
        AgentTurn(prompt="a\x00b")


# ---------------------------------------------------------------- environment


def test_environment_points_the_agent_at_the_gateway_with_the_turn_token() -> None:
    env = ClaudeDriver().environment(ModelAccess("http://172.18.0.1:4000", "aicode-turn-xyz"), {}, "/home/agent/.claude")
    assert env["ANTHROPIC_BASE_URL"] == "http://172.18.0.1:4000"
    assert env["ANTHROPIC_API_KEY"] == "aicode-turn-xyz" and "CLAUDE_CODE_OAUTH_TOKEN" not in env


def test_environment_always_sets_the_quiet_settings_and_config_dir() -> None:
    env = ClaudeDriver().environment(None, {}, "/state/claude")
    assert env == {
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "CLAUDE_CONFIG_DIR": "/state/claude",
    }


def test_environment_includes_passthrough_variables() -> None:
    env = ClaudeDriver().environment(None, {"HTTPS_PROXY": "http://proxy:3128", "TZ": "UTC"}, "/c")
    assert env["HTTPS_PROXY"] == "http://proxy:3128" and env["TZ"] == "UTC"


@pytest.mark.parametrize("name", ["ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN",
                                  "ANTHROPIC_BASE_URL", "anthropic_base_url"])
def test_environment_passthrough_can_neither_carry_a_credential_nor_bypass_the_gateway(name: str) -> None:
    env = ClaudeDriver().environment(ModelAccess("http://gw:1", "aicode-turn-t"), {name: "sk-server"}, "/c")
    assert "sk-server" not in env.values()


def test_environment_passthrough_cannot_move_the_config_dir() -> None:
    env = ClaudeDriver().environment(None, {"CLAUDE_CONFIG_DIR": "/elsewhere"}, "/state/claude")
    assert env["CLAUDE_CONFIG_DIR"] == "/state/claude"


def test_model_access_never_shows_the_token_in_its_repr() -> None:
    assert "aicode-turn-secret" not in repr(ModelAccess("http://gw:1", "aicode-turn-secret"))


def test_driver_gives_a_fresh_parser_per_run() -> None:
    driver = ClaudeDriver()
    turn = AgentTurn(prompt="hi")
    assert isinstance(driver.parser(turn), ClaudeStreamParser) and driver.parser(turn) is not driver.parser(turn)


# ---------------------------------------------------------------- parser: init and assistant lines


def test_init_starts_the_agent(parser: ClaudeStreamParser) -> None:
    assert feed(parser, init_line()) == [
        AgentEvent(
            "agent.started",
            {
                "session_id": SESSION,
                "model": "claude-sonnet-4-5",
                "cwd": "/workspace",
                "tools": ["Task", "Bash", "Edit", "Read", "Write"],
                "agent_version": "2.1.332",
                "permission_mode": "bypassPermissions",
            },
        )
    ]


def test_a_repeated_init_of_the_same_session_is_ignored(parser: ClaudeStreamParser) -> None:
    feed(parser, init_line())
    assert feed(parser, init_line()) == []


def test_text_block_becomes_a_text_message(parser: ClaudeStreamParser) -> None:
    events = feed(parser, assistant_line(text_block("Hello.")))
    assert only(events, "message") == [{"message_id": "msg_01", "kind": "text", "text": "Hello."}]


def test_thinking_block_becomes_a_thinking_message(parser: ClaudeStreamParser) -> None:
    block = {"type": "thinking", "thinking": "Check the tests first.", "signature": "EqQBCkYIBxgCKkB"}
    events = feed(parser, assistant_line(block))
    assert only(events, "message") == [{"message_id": "msg_01", "kind": "thinking", "text": "Check the tests first."}]


def test_tool_use_block_becomes_a_tool_call(parser: ClaudeStreamParser) -> None:
    events = feed(parser, assistant_line(tool_use_block()))
    assert only(events, "tool.call") == [
        {"call_id": "toolu_01", "name": "Bash", "input": {"command": "echo hi", "description": "say hi"}}
    ]


def test_sub_agent_message_carries_its_parent_tool_use_id(parser: ClaudeStreamParser) -> None:
    line = assistant_line(text_block("from the sub-agent"), parent_tool_use_id="toolu_task")
    [message] = only(feed(parser, line), "message")
    assert message["parent_tool_use_id"] == "toolu_task"


def test_top_level_message_has_no_parent_tool_use_id(parser: ClaudeStreamParser) -> None:
    [message] = only(feed(parser, assistant_line(text_block())), "message")
    assert "parent_tool_use_id" not in message


def test_assistant_error_becomes_an_error_notice_not_a_message(parser: ClaudeStreamParser) -> None:
    # As the CLI prints an API failure: a synthetic message whose text is the error.
    line = assistant_line(
        text_block("API Error: 400 probe bad request"), message_id="c7a26e35", usage=usage(0, 0, 0, 0),
        error="unknown", is_api_error_message=True, api_error_status=400,
    )
    expected = {"level": "error", "code": "unknown", "message": "API Error: 400 probe bad request"}
    assert feed(parser, line) == [AgentEvent("notice", expected)]


def test_redacted_thinking_shows_nothing(parser: ClaudeStreamParser) -> None:
    events = feed(parser, assistant_line({"type": "redacted_thinking", "data": "EmwKAhgBEgy3"}))
    assert only(events, "message") == [] and only(events, "notice") == []


def test_unknown_content_block_is_kept_as_a_notice(parser: ClaudeStreamParser) -> None:
    [data] = only(feed(parser, assistant_line({"type": "hologram", "x": 1})), "notice")
    assert data["code"] == "unknown_block" and data["raw"] == {"type": "hologram", "x": 1}


# ---------------------------------------------------------------- parser: usage


def test_first_block_of_a_message_reports_usage(parser: ClaudeStreamParser) -> None:
    events = feed(parser, assistant_line(text_block()))
    assert only(events, "usage") == [
        {"input_tokens": 120, "output_tokens": 1, "cache_read_tokens": 200, "cache_write_tokens": 50, "cost_usd": None}
    ]


def test_later_blocks_of_the_same_message_do_not_count_again(parser: ClaudeStreamParser) -> None:
    feed(parser, assistant_line(text_block()))
    assert only(feed(parser, assistant_line(tool_use_block())), "usage") == []


def test_a_new_message_reports_the_running_totals(parser: ClaudeStreamParser) -> None:
    feed(parser, assistant_line(text_block()), assistant_line(tool_use_block()))
    events = feed(parser, assistant_line(text_block("Done."), message_id="msg_02", usage=usage(300, 1, 200, 50)))
    assert only(events, "usage") == [
        {"input_tokens": 420, "output_tokens": 2, "cache_read_tokens": 400, "cache_write_tokens": 100, "cost_usd": None}
    ]


# ---------------------------------------------------------------- parser: tool results


def test_tool_result_string_becomes_a_tool_result(parser: ClaudeStreamParser) -> None:
    events = feed(parser, tool_result_line("hi"))
    assert events == [
        AgentEvent("tool.result", {"call_id": "toolu_01", "ok": True, "output": "hi", "truncated": False})
    ]


def test_tool_result_with_is_error_is_not_ok(parser: ClaudeStreamParser) -> None:
    [data] = only(feed(parser, tool_result_line("Exit code 3\nhi\nbad", is_error=True)), "tool.result")
    assert data["ok"] is False


def test_tool_result_blocks_join_text_and_stand_in_for_images(parser: ClaudeStreamParser) -> None:
    content = [
        {"type": "text", "text": "screenshot taken"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "text", "text": "done"},
    ]
    [data] = only(feed(parser, tool_result_line(content)), "tool.result")
    assert data["output"] == "screenshot taken\n[image]\ndone"


def test_tool_result_output_is_capped_at_64_kib_on_a_character_boundary(parser: ClaudeStreamParser) -> None:
    [data] = only(feed(parser, tool_result_line("ab" + "€" * 30000)), "tool.result")  # 90 002 bytes
    assert data["truncated"] is True
    assert data["output"] == "ab" + "€" * 21844  # byte 65 536 falls inside the next "€"


def test_tool_result_of_exactly_64_kib_is_not_truncated(parser: ClaudeStreamParser) -> None:
    [data] = only(feed(parser, tool_result_line("x" * 65536)), "tool.result")
    assert data["truncated"] is False and len(data["output"]) == 65536


def test_user_text_without_tool_results_shows_nothing(parser: ClaudeStreamParser) -> None:
    line = {"type": "user", "message": {"role": "user", "content": "the sub-agent prompt"}, "parent_tool_use_id": "t"}
    assert feed(parser, line) == []


# ---------------------------------------------------------------- parser: result lines


def test_successful_result_reports_final_usage_then_completes(parser: ClaudeStreamParser) -> None:
    assert feed(parser, result_line()) == [
        AgentEvent(
            "usage",
            {
                "input_tokens": 420, "output_tokens": 52, "cache_read_tokens": 400, "cache_write_tokens": 100,
                "cost_usd": 0.0033,
            },
        ),
        AgentEvent(
            "turn.completed",
            {
                "status": "succeeded", "result": "Done: the file says hi.", "num_turns": 2, "duration_ms": 412,
                "cost_usd": 0.0033,
            },
        ),
    ]


def test_api_error_result_fails_the_turn_although_subtype_is_success(parser: ClaudeStreamParser) -> None:
    [completed] = only(feed(parser, api_error_result(401)), "turn.completed")
    assert completed["status"] == "failed"
    assert completed["error"] == "the model API answered 401: Invalid API key · Please run /login"


def test_max_turns_result_says_the_turn_limit_was_reached(parser: ClaudeStreamParser) -> None:
    line = result_line(subtype="error_max_turns", is_error=True, num_turns=5, result=None)
    [completed] = only(feed(parser, line), "turn.completed")
    assert completed["error"] == "stopped after reaching the turn limit (5 turns)"


def test_error_result_uses_its_errors_list(parser: ClaudeStreamParser) -> None:
    line = result_line(subtype="error_during_execution", is_error=True, errors=["Tool crashed", "aborted"])
    [completed] = only(feed(parser, line), "turn.completed")
    assert completed["error"] == "Tool crashed; aborted"


def test_result_without_is_error_falls_back_to_the_subtype(parser: ClaudeStreamParser) -> None:
    line = result_line(subtype="error_during_execution")
    del line["is_error"]
    assert only(feed(parser, line), "turn.completed")[0]["status"] == "failed"


# ---------------------------------------------------------------- parser: other lines


def test_api_retry_becomes_a_warning(parser: ClaudeStreamParser) -> None:
    line = {
        "type": "system", "subtype": "api_retry", "attempt": 1, "max_retries": 10, "retry_delay_ms": 514,
        "error_status": 401, "error": "authentication_failed", "session_id": SESSION,
    }
    assert feed(parser, line) == [
        AgentEvent("notice", {
            "level": "warning", "code": "api_retry",
            "message": "the model API call failed (401 authentication_failed); retry 1/10 in 0.5 s",
        })
    ]


def test_compact_boundary_becomes_a_compaction_notice(parser: ClaudeStreamParser) -> None:
    meta = {"trigger": "auto", "pre_tokens": 155000}
    [data] = only(feed(parser, {"type": "system", "subtype": "compact_boundary", "compact_metadata": meta}), "notice")
    assert (data["level"], data["code"]) == ("info", "compaction")
    assert data["message"] == "the conversation was compacted (auto), 155000 tokens before"


def test_rate_limit_event_becomes_a_rate_limit_notice(parser: ClaudeStreamParser) -> None:
    line = {
        "type": "rate_limit_event", "session_id": SESSION,
        "rate_limit_info": {"status": "allowed_warning", "resetsAt": 1771390800, "rateLimitType": "five_hour"},
    }
    [data] = only(feed(parser, line), "notice")
    assert data["code"] == "rate_limit" and data["level"] == "warning"
    assert data["message"] == "rate limit five_hour: allowed_warning, resets at 2026-02-18 05:00 UTC"


def test_other_system_lines_become_info_notices_named_by_subtype(parser: ClaudeStreamParser) -> None:
    line = {"type": "system", "subtype": "hook_started", "hook_id": "h1", "hook_name": "SessionStart:startup"}
    assert only(feed(parser, line), "notice") == [
        {"level": "info", "code": "hook_started", "message": "hook_started: SessionStart:startup"}
    ]


def test_text_deltas_become_live_only_message_deltas(parser: ClaudeStreamParser) -> None:
    start = {"type": "message_start", "message": {"id": "msg_live", "role": "assistant", "content": []}}
    assert feed(parser, {"type": "stream_event", "event": start, "session_id": SESSION}) == []
    delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}
    events = feed(parser, {"type": "stream_event", "event": delta, "session_id": SESSION})
    assert [(e.type, e.data) for e in events] == [("message.delta", {"message_id": "msg_live", "text": "Hi"})]
    thinking = {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hm"}}
    assert feed(parser, {"type": "stream_event", "event": thinking, "session_id": SESSION}) == []
    tool_json = {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{"}}
    assert feed(parser, {"type": "stream_event", "event": tool_json, "session_id": SESSION}) == []


def test_unknown_type_is_kept_as_a_notice_with_the_raw_object(parser: ClaudeStreamParser) -> None:
    line = {"type": "control_request", "request_id": "req_1", "request": {"subtype": "interrupt"}}
    assert feed(parser, line) == [
        AgentEvent("notice", {
            "level": "info", "code": "unknown_event",
            "message": "unrecognised agent output of type 'control_request'", "raw": line,
        })
    ]


def test_a_large_unknown_object_is_kept_cut(parser: ClaudeStreamParser) -> None:
    [data] = only(feed(parser, {"type": "novel", "blob": "z" * 100_000}), "notice")
    assert isinstance(data["raw"], str) and data["raw"].startswith('{"type": "novel"')
    assert len(data["raw"].encode()) <= 8 * 1024


def test_a_plain_text_line_becomes_agent_output(parser: ClaudeStreamParser) -> None:
    events = parser.feed(Line("(node:12) Warning: something odd", False))
    assert events == [
        AgentEvent("notice", {"level": "info", "code": "agent_output", "message": "(node:12) Warning: something odd"})
    ]


def test_a_json_line_that_is_not_an_object_becomes_agent_output(parser: ClaudeStreamParser) -> None:
    [data] = only(parser.feed(Line('["not", "an", "event"]', False)), "notice")
    assert data["code"] == "agent_output"


def test_a_broken_json_object_becomes_agent_output(parser: ClaudeStreamParser) -> None:
    [data] = only(parser.feed(Line('{"type": "assistant", ', False)), "notice")
    assert data["code"] == "agent_output"


def test_a_truncated_line_is_reported_not_parsed(parser: ClaudeStreamParser) -> None:
    text = json.dumps(tool_result_line("x" * 5000))[:3000]
    [event] = parser.feed(Line(text, True))
    assert event.data["level"] == "warning" and event.data["code"] == "line_truncated"
    assert text[:200] in event.data["message"] and text[:201] not in event.data["message"]


def test_blank_lines_are_skipped(parser: ClaudeStreamParser) -> None:
    assert parser.feed(Line("   ", False)) == []


def test_odd_shapes_do_not_crash_the_parser(parser: ClaudeStreamParser) -> None:
    odd = [
        {"type": "assistant", "message": "not an object"},
        {"type": "assistant", "message": {"id": 7, "content": 42, "usage": [1]}},
        {"type": "user", "message": {"content": [None, {"type": "tool_result", "content": {"x": 1}}]}},
        {"type": "result", "usage": "n/a", "num_turns": "three"},
        {"type": 3},
    ]
    for obj in odd:
        assert all(isinstance(event, AgentEvent) for event in feed(parser, obj))


def test_a_failing_handler_becomes_a_notice(parser: ClaudeStreamParser, monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*_args: Any) -> list[AgentEvent]:
        raise KeyError("surprise")

    monkeypatch.setattr(claude_module, "_block_events", explode)
    [data] = only(feed(parser, assistant_line(text_block())), "notice")
    assert data["code"] == "unparsed_event" and data["level"] == "warning"


def test_nul_characters_are_replaced_so_events_can_be_stored(parser: ClaudeStreamParser) -> None:
    [data] = only(parser.feed(Line(json.dumps(tool_result_line("bin\u0000ary \ud800")), False)), "tool.result")
    assert data["output"] == "bin\ufffdary ?"


# ---------------------------------------------------------------- finish and outcome


def test_exit_without_result_fails_the_turn(parser: ClaudeStreamParser) -> None:
    feed(parser, init_line())
    events, outcome = parser.finish(1, "Error: something broke\n")
    expected_error = "the agent exited (code 1) without a result line: Error: something broke"
    assert events == [
        AgentEvent("turn.completed", {
            "status": "failed", "result": None, "num_turns": None, "duration_ms": None, "cost_usd": None,
            "error": expected_error,
        })
    ]
    assert outcome.ok is False and outcome.error == expected_error


def test_exit_without_result_keeps_only_the_stderr_tail(parser: ClaudeStreamParser) -> None:
    _, outcome = parser.finish(137, "early noise " * 1000 + "the last words")
    assert outcome.error is not None and outcome.error.endswith("the last words")
    assert "early noise " * 200 not in outcome.error and len(outcome.error) < 2300


def test_exit_without_result_keeps_session_and_running_tokens(parser: ClaudeStreamParser) -> None:
    feed(parser, init_line(), assistant_line(text_block()))
    _, outcome = parser.finish(None, "")
    assert (outcome.session_id, outcome.input_tokens, outcome.cache_read_tokens) == (SESSION, 120, 200)
    assert outcome.error == "the agent exited (code unknown) without a result line"


def test_successful_result_wins_over_a_non_zero_exit(parser: ClaudeStreamParser) -> None:
    feed(parser, result_line())
    events, outcome = parser.finish(1, "")
    assert outcome.ok is True
    assert [event.data["code"] for event in events] == ["exit_code"]


def test_finish_after_a_result_adds_no_turn_completed(parser: ClaudeStreamParser) -> None:
    feed(parser, api_error_result(401))
    events, outcome = parser.finish(1, "")
    assert events == [] and outcome.error == "the model API answered 401: Invalid API key · Please run /login"


def test_outcome_summarises_a_whole_turn(parser: ClaudeStreamParser) -> None:
    feed(
        parser, init_line(), assistant_line(text_block()), assistant_line(tool_use_block()),
        tool_result_line("hi"), assistant_line(text_block("Done."), message_id="msg_02"), result_line(),
    )
    _, outcome = parser.finish(0, "")
    assert outcome == claude_module.TurnOutcome(
        ok=True, session_id=SESSION, result_text="Done: the file says hi.", num_turns=2, duration_ms=412,
        cost_usd=0.0033, input_tokens=420, output_tokens=52, cache_read_tokens=400, cache_write_tokens=100, error=None,
    )


def test_a_whole_run_through_the_splitter_gives_events_in_order(parser: ClaudeStreamParser) -> None:
    objs = [
        init_line(), assistant_line(text_block()), assistant_line(tool_use_block()), tool_result_line("hi"),
        assistant_line(text_block("Done."), message_id="msg_02", usage=usage(300)), result_line(),
    ]
    stream = "".join(json.dumps(obj) + "\n" for obj in objs).encode()
    splitter = LineSplitter()
    lines = [line for start in range(0, len(stream), 7) for line in splitter.feed(stream[start : start + 7])]
    events = [event for line in lines + splitter.flush() for event in parser.feed(line)]
    assert [event.type for event in events] == [
        "agent.started", "message", "usage", "tool.call", "tool.result", "message", "usage", "usage", "turn.completed",
    ]
