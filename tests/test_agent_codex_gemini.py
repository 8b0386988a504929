"""The Codex and Gemini drivers: argv and environment, and their recorded output (tests/fixtures/agent_streams,
printed by the real CLIs) parsed into the same events Claude Code's become."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aicode.agents.codex import CodexDriver, CodexStreamParser
from aicode.agents.events import AgentEvent, TokenCount, TurnOutcome
from aicode.agents.gemini import GeminiDriver, GeminiStreamParser
from aicode.agents.lines import Line
from aicode.agents.registry import AGENTS, driver_for
from aicode.agents.turn import AgentTurn, ModelAccess

STREAMS = Path(__file__).parent / "fixtures" / "agent_streams"
ACCESS = ModelAccess("http://172.30.0.1:4100", "aicode-turn-secret")


def run(parser: CodexStreamParser | GeminiStreamParser, name: str, exit_code: int = 0
        ) -> tuple[list[AgentEvent], TurnOutcome]:
    events = [event for line in (STREAMS / name).read_text().splitlines() for event in parser.feed(Line(line, False))]
    closing, outcome = parser.finish(exit_code, "")
    return events + closing, outcome


def of(events: list[AgentEvent], kind: str) -> list[dict]:
    return [event.data for event in events if event.type == kind]


# -- Codex -----------------------------------------------------------------------------------------


def test_codex_write_and_run_becomes_write_and_bash_calls_with_results() -> None:
    events, outcome = run(CodexStreamParser("gpt-5.5"), "codex-write-and-run.jsonl")
    started = of(events, "agent.started")
    assert started == [{"session_id": "01a22b5b-8b0e-76b2-895f-69e1ae6a35fc", "model": "gpt-5.5",
                        "cwd": "/workspace", "tools": [], "agent_version": None}]
    calls = of(events, "tool.call")
    assert [(call["name"], call["input"].get("command") or call["input"].get("file_path")) for call in calls] == [
        ("Write", "/root/aicode-recording/codex/project/hello.txt"), ("Bash", "cat hello.txt"),
        ("Bash", "ls no-such-file")]
    results = {result["call_id"]: result for result in of(events, "tool.result")}
    assert [results[call["call_id"]]["ok"] for call in calls] == [True, True, False]
    assert results[calls[1]["call_id"]]["output"] == "hello from codex\n"
    assert results[calls[2]["call_id"]]["exit_code"] == 2
    messages = of(events, "message")
    assert [m["kind"] for m in messages] == ["thinking", "text"]
    assert outcome.ok and outcome.session_id == "01a22b5b-8b0e-76b2-895f-69e1ae6a35fc"
    assert outcome.result_text == "Created hello.txt; `ls no-such-file` failed as expected."
    assert (outcome.input_tokens, outcome.output_tokens) == (28500, 220)
    assert of(events, "turn.completed")[0]["status"] == "succeeded"
    assert not of(events, "notice")
    # Each call comes before its result, and the turn ends last.
    kinds = [event.type for event in events]
    assert kinds[-1] == "turn.completed" and kinds.index("tool.call") < kinds.index("tool.result")


def test_a_resumed_codex_turn_reports_its_own_usage_not_the_thread_total() -> None:
    before = TokenCount(input=28500, output=220)
    events, outcome = run(CodexStreamParser("gpt-5.5", before), "codex-resume.jsonl")
    assert (outcome.input_tokens, outcome.output_tokens) == (43390 - 28500, 311 - 220)
    assert of(events, "usage") == [{"input_tokens": 14890, "output_tokens": 91, "cache_read_tokens": 0,
                                    "cache_write_tokens": 0, "cost_usd": None}]
    assert of(events, "tool.call")[0]["input"] == {"command": "echo second line >> hello.txt && cat hello.txt"}


def test_a_codex_api_error_fails_the_turn_with_the_providers_message() -> None:
    events, outcome = run(CodexStreamParser("gpt-5.5"), "codex-api-error.jsonl", exit_code=1)
    assert not outcome.ok
    assert outcome.error == ("the model API refused the call: Your input exceeds the context window of this "
                             "model. (mock)")
    completed = of(events, "turn.completed")
    assert len(completed) == 1 and completed[0]["status"] == "failed"


def test_a_codex_stream_that_ends_without_its_turn_is_a_failed_turn() -> None:
    parser = CodexStreamParser("gpt-5.5")
    lines = (STREAMS / "codex-write-and-run.jsonl").read_text().splitlines()[:5]
    for line in lines:
        parser.feed(Line(line, False))
    events, outcome = parser.finish(143, "Terminated")
    assert not outcome.ok and "code 143" in (outcome.error or "")
    assert [event.type for event in events] == ["turn.completed"]


def test_codex_lines_it_does_not_know_are_kept_as_notices() -> None:
    parser = CodexStreamParser("gpt-5.5")
    unknown = parser.feed(Line(json.dumps({"type": "turn.plan_updated", "plan": ["a"]}), False))
    odd_item = parser.feed(Line(json.dumps({"type": "item.completed", "item": {"id": "i", "type": "hologram"}}),
                                False))
    not_json = parser.feed(Line("Reading prompt from stdin...", False))
    broken = parser.feed(Line('{"type": "item.completed", "item": 5}', False))
    assert [event.data["code"] for event in unknown + odd_item + not_json] == [
        "unknown_event", "unknown_item", "agent_output"]
    assert [event.type for event in broken] in (["notice"], [])


def test_codex_reconnect_warnings_are_notices_and_do_not_end_the_turn() -> None:
    parser = CodexStreamParser("gpt-5.5")
    warning = parser.feed(Line('{"type":"error","message":"Reconnecting... 1/5"}', False))
    assert warning[0].type == "notice" and warning[0].data["level"] == "warning"
    done = parser.feed(Line('{"type":"turn.completed","usage":{"input_tokens":10,"output_tokens":2}}', False))
    assert done[-1].data["status"] == "succeeded"


def test_codex_command_line_reaches_the_gateway_with_the_token_in_an_env_variable_only() -> None:
    driver = CodexDriver()
    turn = AgentTurn(prompt="--help me", model="gpt-5.4")
    argv = driver.command(turn, ACCESS)
    assert argv[:3] == ["codex", "exec", "--json"] and argv[-2:] == ["--", "--help me"]
    assert 'model_providers.aicode.base_url="http://172.30.0.1:4100/openai/v1"' in argv
    assert "--model=gpt-5.4" in argv and "--dangerously-bypass-approvals-and-sandbox" in argv
    assert not any("aicode-turn-secret" in arg for arg in argv)
    env = driver.environment(ACCESS, {"OPENAI_API_KEY": "sk-leak", "TZ": "UTC"}, "/home/agent/.codex")
    assert env == {"TZ": "UTC", "CODEX_GATEWAY_TOKEN": "aicode-turn-secret", "CODEX_HOME": "/home/agent/.codex"}
    resumed = driver.command(AgentTurn(prompt="again", resume_session_id="thread-1"), ACCESS)
    assert resumed[:3] == ["codex", "exec", "resume"] and resumed[-3:] == ["thread-1", "--", "again"]


# -- Gemini ----------------------------------------------------------------------------------------


def test_gemini_deltas_are_joined_into_whole_messages_and_tools_get_claudes_names() -> None:
    events, outcome = run(GeminiStreamParser(), "gemini-write-and-run.jsonl")
    assert of(events, "agent.started")[0]["session_id"] == "fc448e23-637f-45e4-a267-4024d1bb2852"
    assert [m["text"] for m in of(events, "message")] == [
        "I'll create the file.", "Created hello.txt; `ls no-such-file` failed as expected."]
    # Live viewers got the deltas, under the id the whole message is then stored with.
    deltas = of(events, "message.delta")
    assert "".join(d["text"] for d in deltas[:3]) == "I'll create the file."
    assert {d["message_id"] for d in deltas[:3]} == {of(events, "message")[0]["message_id"]}
    calls = of(events, "tool.call")
    assert [call["name"] for call in calls] == ["Write", "Bash", "Bash"]
    assert calls[0]["input"] == {"file_path": "hello.txt", "content": "hello from gemini\n"}
    results = of(events, "tool.result")
    assert [r["call_id"] for r in results] == [c["call_id"] for c in calls]
    assert results[1]["output"] == "hello from gemini"
    assert outcome.ok and outcome.session_id == "fc448e23-637f-45e4-a267-4024d1bb2852"
    assert (outcome.input_tokens, outcome.output_tokens, outcome.duration_ms) == (1549, 114, 315)
    # The first message is emitted before the tool call that followed it.
    kinds = [event.type for event in events]
    assert kinds.index("message") < kinds.index("tool.call")


def test_a_resumed_gemini_turn_counts_its_own_run() -> None:
    events, outcome = run(GeminiStreamParser(), "gemini-resume.jsonl")
    assert outcome.ok and (outcome.input_tokens, outcome.output_tokens) == (1693, 47)
    assert of(events, "message")[0]["text"] == "Appended a second line."


def test_a_gemini_api_error_fails_the_turn_with_the_providers_message() -> None:
    events, outcome = run(GeminiStreamParser(), "gemini-api-error.jsonl", exit_code=144)
    assert not outcome.ok
    assert outcome.error == ("the model API answered 400: The input token count exceeds the maximum number of "
                             "tokens allowed. (mock)")
    assert of(events, "turn.completed")[0]["status"] == "failed"


@pytest.mark.parametrize(("code", "said"), [(144, "HTTP 400"), (244, "HTTP 500"), (41, "authentication"),
                                            (None, "stopped")])
def test_a_gemini_run_without_a_result_line_says_why_from_its_exit_code(code: int | None, said: str) -> None:
    parser = GeminiStreamParser()
    parser.feed(Line('{"type":"init","session_id":"s","model":"gemini-2.5-pro"}', False))
    parser.feed(Line('{"type":"message","role":"assistant","content":"half a sen","delta":true}', False))
    events, outcome = parser.finish(code, "")
    assert not outcome.ok and said in (outcome.error or "")
    assert [event.type for event in events] == ["message", "turn.completed"]  # the partial text is kept


def test_gemini_lines_it_does_not_know_are_kept_as_notices() -> None:
    parser = GeminiStreamParser()
    events = parser.feed(Line('{"type":"compression","tokens":5}', False))
    assert events[0].type == "notice" and events[0].data["code"] == "unknown_event"
    warning = parser.feed(Line('{"type":"error","severity":"warning","message":"Loop detected"}', False))
    assert warning[0].data["level"] == "warning"


def test_gemini_command_writes_its_settings_in_the_sandbox_and_keeps_the_key_out_of_argv() -> None:
    driver = GeminiDriver()
    argv = driver.command(AgentTurn(prompt="-x", resume_session_id="s-1"), ACCESS)
    assert argv[:2] == ["sh", "-c"]
    settings = json.loads(argv[4])
    assert settings["security"]["auth"]["selectedType"] == "gemini-api-key"
    assert settings["security"]["folderTrust"]["enabled"] is False
    assert argv[5:] == ["gemini", "--model=gemini-2.5-pro", "--output-format=stream-json", "--yolo",
                        "--resume=s-1", "--prompt=-x"]
    env = driver.environment(ACCESS, {"GEMINI_API_KEY": "real", "GOOGLE_API_KEY": "real"}, "/home/agent/.gemini-cli")
    assert env["GEMINI_API_KEY"] == "aicode-turn-secret" and "GOOGLE_API_KEY" not in env
    assert env["GOOGLE_GEMINI_BASE_URL"] == "http://172.30.0.1:4100/gemini"
    assert env["GEMINI_CLI_HOME"] == "/home/agent/.gemini-cli"


def test_every_agent_has_a_driver_with_its_own_state_folder() -> None:
    drivers = [driver_for(name) for name in AGENTS]
    assert AGENTS == ("claude", "codex", "gemini")
    assert len({driver.config_dir for driver in drivers}) == 3
    assert {driver.provider for driver in drivers} == {"anthropic", "openai", "gemini"}
