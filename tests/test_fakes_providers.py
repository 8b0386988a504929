"""The OpenAI and Gemini API mocks behave like the real APIs, and the REAL Codex and Gemini CLIs do real
work from their scripted answers.

The first half speaks plain HTTP to each mock (the SSE is well formed, replies come in script order,
errors have the API's shape, requests are recorded). The second half runs the CLIs installed under
.cache/ on the host, with the invocations the server uses, in a temporary git repository; those tests
are skipped when the CLIs are absent.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.fakes import mock_gemini as gm
from tests.fakes import mock_openai as om
from tests.fakes.mock_gemini import MockGemini
from tests.fakes.mock_openai import MockOpenAI

ROOT = Path(__file__).resolve().parent.parent
CODEX = ROOT / ".cache/codex/0.171.0/node_modules/@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex"
GEMINI_JS = ROOT / ".cache/gemini-cli/0.61.0/node_modules/@google/gemini-cli/bundle/gemini.js"
NODE = shutil.which("node")
needs_codex = pytest.mark.skipif(not CODEX.is_file(), reason=f"Codex CLI not installed at {CODEX}")
needs_gemini = pytest.mark.skipif(not GEMINI_JS.is_file() or NODE is None,
                                  reason=f"Gemini CLI not installed at {GEMINI_JS} (or no node)")
TOKEN = "test-token-123"
GEMINI_SETTINGS = {
    "security": {"auth": {"selectedType": "gemini-api-key"}, "folderTrust": {"enabled": False}},
    "privacy": {"usageStatisticsEnabled": False}, "telemetry": {"enabled": False},
    "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False, "maxAttempts": 1},
}


@pytest.fixture
async def mock_openai() -> AsyncIterator[MockOpenAI]:
    async with MockOpenAI() as mock:
        yield mock


@pytest.fixture
async def mock_gemini() -> AsyncIterator[MockGemini]:
    async with MockGemini() as mock:
        yield mock


# --- the OpenAI Responses API mock, over HTTP ---------------------------------------------------------
async def post_responses(mock: MockOpenAI, body: dict[str, Any],
                         headers: dict[str, str] | None = None) -> tuple[int, list[dict[str, Any]]]:
    """POST /v1/responses; the status and the SSE events (each checked: event name == data.type)."""
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{mock.url}/v1/responses", json=body, headers=headers) as response:
            raw = await response.text()
            if response.content_type != "text/event-stream":
                return response.status, [json.loads(raw)]
    events = []
    for chunk in raw.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in chunk.splitlines())
        data = json.loads(fields["data"])
        assert fields["event"] == data["type"]
        events.append(data)
    return response.status, events


def responses_body(**extra: Any) -> dict[str, Any]:
    return {"model": "gpt-test", "stream": True, "input": [{"type": "message", "role": "user",
                                                            "content": [{"type": "input_text", "text": "hi"}]}],
            **extra}


async def test_openai_mock_streams_items_as_responses_api_events(mock_openai: MockOpenAI) -> None:
    patch = om.add_file("a.txt", "hi\n")
    mock_openai.script([[om.reasoning("think"), om.message("Hello there"), om.shell("ls -la", call_id="call_1"),
                         om.apply_patch(patch, call_id="call_2")]])
    status, events = await post_responses(mock_openai, responses_body())
    assert status == 200
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert kinds.count("response.output_item.added") == kinds.count("response.output_item.done") == 4

    def joined(kind: str) -> str:
        pieces = [e["delta"] for e in events if e["type"] == kind]
        assert len(pieces) >= 2, kind  # really streamed
        return "".join(pieces)

    assert joined("response.reasoning_summary_text.delta") == "think"
    assert joined("response.output_text.delta") == "Hello there"
    assert json.loads(joined("response.function_call_arguments.delta")) == {"cmd": "ls -la"}
    assert joined("response.custom_tool_call_input.delta") == patch
    completed = events[-1]["response"]
    assert completed["status"] == "completed" and completed["model"] == "gpt-test"
    assert [(i["type"], i.get("name")) for i in completed["output"]] == [
        ("reasoning", None), ("message", None), ("function_call", "exec_command"), ("custom_tool_call", "apply_patch")]
    assert completed["output"][2]["call_id"] == "call_1" and completed["output"][3]["input"] == patch
    usage = completed["usage"]
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > usage["output_tokens_details"]["reasoning_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert usage["input_tokens_details"] == {"cached_tokens": 0}
    assert mock_openai.usages == [usage]


async def test_openai_mock_follows_the_script_then_answers_done(mock_openai: MockOpenAI) -> None:
    mock_openai.script(["first", om.reply("second", cached_tokens=7)])
    answers = []
    for _ in range(3):
        _, events = await post_responses(mock_openai, responses_body())
        answers.append("".join(e["delta"] for e in events if e["type"] == "response.output_text.delta"))
    assert answers == ["first", "second", "done"]
    assert [u["input_tokens_details"]["cached_tokens"] for u in mock_openai.usages] == [0, 7, 0]
    assert mock_openai.remaining == 0


async def test_openai_mock_errors_have_the_api_shape(mock_openai: MockOpenAI) -> None:
    mock_openai.script([om.error(400, "prompt too long"), om.error(402, "budget exhausted", code="no_credit")])
    status, [body] = await post_responses(mock_openai, responses_body())
    assert status == 400
    assert body == {"error": {"message": "prompt too long", "type": "invalid_request_error", "param": None,
                              "code": None}}
    status, [body] = await post_responses(mock_openai, responses_body())
    assert status == 402 and body["error"]["code"] == "no_credit"


async def test_openai_mock_stream_failure_ends_in_response_failed(mock_openai: MockOpenAI) -> None:
    mock_openai.script([om.failed("overloaded", code="server_error")])
    status, events = await post_responses(mock_openai, responses_body())
    assert status == 200 and [e["type"] for e in events][-1] == "response.failed"
    assert events[-1]["response"]["error"] == {"code": "server_error", "message": "overloaded"}


async def test_openai_mock_records_bodies_and_headers(mock_openai: MockOpenAI) -> None:
    body = responses_body()
    await post_responses(mock_openai, body, headers={"Authorization": f"Bearer {TOKEN}"})
    await mock_openai.wait_for_requests(1, timeout=1)
    assert mock_openai.requests == [body]
    assert mock_openai.request_headers[0]["Authorization"] == f"Bearer {TOKEN}"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{mock_openai.url}/v1/models") as response:
            assert response.status == 404 and "error" in await response.json()
    assert [(r.method, r.path) for r in mock_openai.other_requests] == [("GET", "/v1/models")]


async def test_openai_mock_sends_code_mode_models_an_exec_call(mock_openai: MockOpenAI) -> None:
    # What Codex sends for gpt-6.x: no top-level tools, an `exec` custom tool in an additional_tools item.
    exec_tool = {"type": "custom", "name": "exec", "description": "Run JavaScript"}
    declared = {"type": "additional_tools", "role": "developer",
                "tools": [{"type": "namespace", "name": "functions", "tools": [exec_tool]}]}
    mock_openai.script([[om.shell("cat a.txt"), om.apply_patch("*** Begin Patch\n*** End Patch\n")]])
    _, events = await post_responses(mock_openai, responses_body(input=[declared]))
    output = events[-1]["response"]["output"]
    assert [(i["type"], i["name"]) for i in output] == [("custom_tool_call", "exec")] * 2
    assert 'tools.exec_command({"cmd": "cat a.txt"})' in output[0]["input"]
    assert 'tools.apply_patch("*** Begin Patch\\n*** End Patch\\n")' in output[1]["input"]


# --- the Gemini API mock, over HTTP -------------------------------------------------------------------
async def post_gemini(mock: MockGemini, method: str, body: dict[str, Any], model: str = "gemini-test",
                      query: str = "?alt=sse") -> tuple[int, Any]:
    """POST /v1beta/models/<model>:<method>; the status and the SSE chunks (a list) or the JSON body."""
    headers = {"x-goog-api-key": TOKEN}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{mock.url}/v1beta/models/{model}:{method}{query}", json=body,
                             headers=headers) as response:
            raw = await response.text()
            if response.content_type != "text/event-stream":
                return response.status, json.loads(raw)
    assert raw.endswith("\r\n\r\n")
    chunks = []
    for event in raw.split("\r\n\r\n")[:-1]:
        assert event.startswith("data: ") and "\n" not in event
        chunks.append(json.loads(event.removeprefix("data: ")))
    return response.status, chunks


def gemini_body(prompt: str = "hi") -> dict[str, Any]:
    return {"contents": [{"role": "user", "parts": [{"text": prompt}]}]}


async def test_gemini_mock_streams_parts_as_sse_chunks(mock_gemini: MockGemini) -> None:
    mock_gemini.script([gm.reply(gm.thought("hmm"), "Hello there",
                                 gm.write_file("a.txt", "hi"), cached_tokens=3)])
    status, chunks = await post_gemini(mock_gemini, "streamGenerateContent", gemini_body())
    assert status == 200
    parts = [p for c in chunks for p in c["candidates"][0]["content"]["parts"]]
    assert all(c["candidates"][0]["content"]["role"] == "model" and c["modelVersion"] == "gemini-test"
               for c in chunks)
    texts = [p["text"] for p in parts if "text" in p and not p.get("thought")]
    assert len(texts) >= 2 and "".join(texts) == "Hello there"  # real deltas
    assert "".join(p["text"] for p in parts if p.get("thought")) == "hmm"
    assert parts[-1] == {"functionCall": {"name": "write_file", "args": {"file_path": "a.txt", "content": "hi"}}}
    assert [c["candidates"][0].get("finishReason") for c in chunks] == [None] * (len(chunks) - 1) + ["STOP"]
    usage = chunks[-1]["usageMetadata"]
    assert usage["totalTokenCount"] == (usage["promptTokenCount"] + usage["candidatesTokenCount"]
                                        + usage["thoughtsTokenCount"])
    assert usage["cachedContentTokenCount"] == 3
    assert mock_gemini.usages == [usage]


async def test_gemini_mock_follows_the_script_then_answers_done(mock_gemini: MockGemini) -> None:
    mock_gemini.script(["first", [gm.run_shell_command("ls", "List files")]])
    answers = []
    for _ in range(3):
        _, chunks = await post_gemini(mock_gemini, "streamGenerateContent", gemini_body())
        answers.append([p for c in chunks for p in c["candidates"][0]["content"]["parts"]])
    assert "".join(p["text"] for p in answers[0]) == "first"
    assert answers[1] == [{"functionCall": {"name": "run_shell_command",
                                            "args": {"command": "ls", "description": "List files"}}}]
    assert "".join(p["text"] for p in answers[2]) == "done"


async def test_gemini_mock_errors_have_google_shape(mock_gemini: MockGemini) -> None:
    mock_gemini.script([gm.error(400, "bad prompt"), gm.error(429, "slow down")])
    assert await post_gemini(mock_gemini, "streamGenerateContent", gemini_body()) == (
        400, {"error": {"code": 400, "message": "bad prompt", "status": "INVALID_ARGUMENT"}})
    status, body = await post_gemini(mock_gemini, "streamGenerateContent", gemini_body())
    assert status == 429 and body["error"]["status"] == "RESOURCE_EXHAUSTED"


async def test_gemini_mock_records_bodies_headers_and_models(mock_gemini: MockGemini) -> None:
    await post_gemini(mock_gemini, "streamGenerateContent", gemini_body("one"), model="gemini-2.5-pro")
    await mock_gemini.wait_for_requests(1, timeout=1)
    assert mock_gemini.requests == [gemini_body("one")]
    assert mock_gemini.request_headers[0]["x-goog-api-key"] == TOKEN
    assert mock_gemini.request_models == ["gemini-2.5-pro"]


async def test_gemini_mock_answers_side_calls_without_using_the_script(mock_gemini: MockGemini) -> None:
    mock_gemini.script(["scripted"])
    schema = {"type": "OBJECT", "properties": {"reasoning": {"type": "STRING"}, "score": {"type": "INTEGER"},
                                               "choice": {"type": "STRING", "enum": ["flash", "pro"]}},
              "required": ["reasoning", "score", "choice"]}
    body = {**gemini_body(), "generationConfig": {"responseMimeType": "application/json",
                                                  "responseJsonSchema": schema}}
    status, answer = await post_gemini(mock_gemini, "generateContent", body, query="")
    assert status == 200 and answer["candidates"][0]["finishReason"] == "STOP"
    assert json.loads(answer["candidates"][0]["content"]["parts"][0]["text"]) == {
        "reasoning": "mock", "score": 1, "choice": "flash"}
    status, counted = await post_gemini(mock_gemini, "countTokens", gemini_body(), query="")
    assert status == 200 and counted["totalTokens"] > 0
    assert [r.path.rpartition(":")[2] for r in mock_gemini.other_requests] == ["generateContent", "countTokens"]
    assert mock_gemini.requests == [] and mock_gemini.remaining == 1


async def test_gemini_mock_streams_a_json_array_without_alt_sse(mock_gemini: MockGemini) -> None:
    status, chunks = await post_gemini(mock_gemini, "streamGenerateContent", gemini_body(), query="")
    assert status == 200 and isinstance(chunks, list)
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"


# --- the real CLIs against the mocks ------------------------------------------------------------------
@dataclass(frozen=True)
class CliRun:
    exit_code: int
    stdout: str
    stderr: str

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        """The JSON lines of stdout (of one `type` when given)."""
        lines = [json.loads(line) for line in self.stdout.splitlines() if line.startswith("{")]
        return [e for e in lines if kind is None or e.get("type") == kind]


async def run_cli(argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 60) -> CliRun:
    """Run a CLI with stdin /dev/null and only `env` (plus PATH); kill its process group on timeout."""
    process = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, env={"PATH": os.environ["PATH"], **env}, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        async with asyncio.timeout(timeout):
            stdout, stderr = await process.communicate()
    except TimeoutError:
        os.killpg(process.pid, signal.SIGKILL)  # gemini ignores SIGTERM; the group takes its children too
        await process.communicate()
        raise
    assert process.returncode is not None
    return CliRun(process.returncode, stdout.decode(), stderr.decode())


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An empty git repository for the agent to work in."""
    path = tmp_path / "project"
    path.mkdir()
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    return path


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """HOME and TMPDIR of their own (Gemini writes crash reports to the temp dir)."""
    for name in ("home", "tmp"):
        (tmp_path / name).mkdir()
    return {"HOME": str(tmp_path / "home"), "TMPDIR": str(tmp_path / "tmp"), "LANG": "C.UTF-8"}


@pytest.fixture
def codex_env(tmp_path: Path, cli_env: dict[str, str]) -> dict[str, str]:
    # Under /tmp Codex only warns on stderr that it makes no PATH aliases; the tools still work.
    (tmp_path / "codex-home").mkdir()
    return {**cli_env, "CODEX_HOME": str(tmp_path / "codex-home"), "AICODE_OPENAI_TOKEN": TOKEN}


@pytest.fixture
def gemini_env(tmp_path: Path, cli_env: dict[str, str], mock_gemini: MockGemini) -> dict[str, str]:
    settings = tmp_path / "gemini-home" / ".gemini" / "settings.json"
    settings.parent.mkdir(parents=True)
    settings.write_text(json.dumps(GEMINI_SETTINGS))
    return {**cli_env, "GEMINI_CLI_HOME": str(tmp_path / "gemini-home"), "GEMINI_API_KEY": TOKEN,
            "GOOGLE_GEMINI_BASE_URL": mock_gemini.url}


def codex_argv(mock: MockOpenAI, prompt: str, *, model: str = "gpt-5.5", resume: str | None = None) -> list[str]:
    """The server's invocation: a provider given by -c flags, retries off; `--` before the prompt."""
    provider = {"name": '"aicode gateway"', "base_url": f'"{mock.url}/v1"', "wire_api": '"responses"',
                "env_key": '"AICODE_OPENAI_TOKEN"', "request_max_retries": "0", "stream_max_retries": "0"}
    config = ['model_provider="aicode"', *(f"model_providers.aicode.{k}={v}" for k, v in provider.items()),
              "check_for_update_on_startup=false", "analytics.enabled=false"]
    command = ["exec", "resume"] if resume else ["exec"]
    flags = ["--json", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox",
             *(arg for item in config for arg in ("-c", item)), "-m", model]
    return [str(CODEX), *command, *flags, *([resume] if resume else []), "--", prompt]


def gemini_argv(prompt: str, *, resume: str | None = None) -> list[str]:
    """The server's invocation; `--prompt=` so a prompt starting with "-" is not taken for an option."""
    assert NODE is not None
    return [NODE, str(GEMINI_JS), "-m", "gemini-2.5-pro", "-o", "stream-json", "--yolo",
            *(["-r", resume] if resume else []), f"--prompt={prompt}"]


def input_texts(body: dict[str, Any], role: str) -> list[str]:
    """The texts of one role's messages in a Responses API request's `input`."""
    return [part["text"] for item in body["input"] if item.get("type") == "message" and item.get("role") == role
            for part in item["content"]]


@needs_codex
@pytest.mark.parametrize("model", ["gpt-5.5", "gpt-6.2-sol"])  # classic tools; code mode (the CLI's default)
async def test_codex_applies_a_patch_and_runs_a_command(mock_openai: MockOpenAI, project: Path,
                                                        codex_env: dict[str, str], model: str) -> None:
    mock_openai.script([
        [om.reasoning("Write it, then show it."), om.apply_patch(om.add_file("notes/hello.txt", "hello codex\n"))],
        [om.shell("cat notes/hello.txt && git status --short")],
        "Wrote notes/hello.txt.",
    ])
    run = await run_cli(codex_argv(mock_openai, "Write the note.", model=model), project, codex_env)
    assert run.exit_code == 0, run.stderr
    assert (project / "notes" / "hello.txt").read_text() == "hello codex\n"
    items = [e["item"] for e in run.events("item.completed")]
    assert [i["type"] for i in items] == ["reasoning", "file_change", "command_execution", "agent_message"]
    assert items[1]["changes"] == [{"path": str(project / "notes" / "hello.txt"), "kind": "add"}]
    assert items[2]["exit_code"] == 0 and items[2]["aggregated_output"].startswith("hello codex\n?? notes/")
    assert items[3]["text"] == "Wrote notes/hello.txt."
    assert len(mock_openai.requests) == 3
    assert {h["Authorization"] for h in mock_openai.request_headers} == {f"Bearer {TOKEN}"}
    assert mock_openai.requests[0]["model"] == model


@needs_codex
async def test_codex_declares_the_tools_the_mock_scripts(mock_openai: MockOpenAI, project: Path,
                                                         codex_env: dict[str, str]) -> None:
    run = await run_cli(codex_argv(mock_openai, "Hello."), project, codex_env)
    assert run.exit_code == 0, run.stderr
    tools = {t.get("name"): t for t in mock_openai.requests[0]["tools"]}
    assert tools["exec_command"]["type"] == "function"
    assert tools["exec_command"]["parameters"]["required"] == ["cmd"]
    assert tools["apply_patch"]["type"] == "custom"  # freeform: answered with a custom_tool_call
    assert tools["apply_patch"]["format"]["syntax"] == "lark"


@needs_codex
async def test_codex_resume_sends_the_earlier_turns(mock_openai: MockOpenAI, project: Path,
                                                    codex_env: dict[str, str]) -> None:
    mock_openai.script(["The first answer."])
    first = await run_cli(codex_argv(mock_openai, "First question."), project, codex_env)
    assert first.exit_code == 0, first.stderr
    thread_id = first.events("thread.started")[0]["thread_id"]
    mock_openai.script([[om.shell("true")], "The second answer."])
    second = await run_cli(codex_argv(mock_openai, "Second question.", resume=thread_id), project, codex_env)
    assert second.exit_code == 0, second.stderr
    assert second.events("thread.started")[0]["thread_id"] == thread_id
    resumed = mock_openai.requests[1]
    assert input_texts(resumed, "user")[-2:] == ["First question.", "Second question."]
    assert input_texts(resumed, "assistant") == ["The first answer."]
    # A resumed turn reports the whole thread's usage, not its own.
    usage = second.events("turn.completed")[0]["usage"]
    assert usage["input_tokens"] == sum(u["input_tokens"] for u in mock_openai.usages)


@needs_codex
async def test_codex_takes_a_prompt_that_starts_with_a_dash(mock_openai: MockOpenAI, project: Path,
                                                            codex_env: dict[str, str]) -> None:
    run = await run_cli(codex_argv(mock_openai, "--help me"), project, codex_env)
    assert run.exit_code == 0, run.stderr
    assert input_texts(mock_openai.requests[0], "user")[-1] == "--help me"


@needs_codex
async def test_codex_api_error_fails_the_turn_at_once(mock_openai: MockOpenAI, project: Path,
                                                      codex_env: dict[str, str]) -> None:
    mock_openai.default = om.error(402, "Budget exhausted")
    run = await run_cli(codex_argv(mock_openai, "Hello."), project, codex_env)
    assert run.exit_code == 1
    assert [e["type"] for e in run.events()] == ["thread.started", "turn.started", "error", "turn.failed"]
    message = run.events("turn.failed")[0]["error"]["message"]
    assert message.startswith("unexpected status 402 Payment Required: Budget exhausted")
    assert len(mock_openai.requests) == 1  # the retry settings are honoured


@needs_gemini
async def test_gemini_writes_a_file_and_runs_a_command(mock_gemini: MockGemini, project: Path,
                                                       gemini_env: dict[str, str]) -> None:
    mock_gemini.script([
        [gm.thought("Write it, then show it."), "Writing the note.", gm.write_file("notes/hello.txt", "hello gemini\n")],
        [gm.run_shell_command("cat notes/hello.txt && git status --short", "Show the note")],
        "Wrote notes/hello.txt.",
    ])
    run = await run_cli(gemini_argv("Write the note."), project, gemini_env)
    assert run.exit_code == 0, run.stderr
    assert (project / "notes" / "hello.txt").read_text() == "hello gemini\n"
    assert [e["tool_name"] for e in run.events("tool_use")] == ["write_file", "run_shell_command"]
    results = run.events("tool_result")
    assert [r["status"] for r in results] == ["success", "success"]
    assert results[1]["output"].startswith("hello gemini\n?? notes/")
    deltas = [e["content"] for e in run.events("message") if e["role"] == "assistant"]
    assert len(deltas) > 2 and "".join(deltas) == "Writing the note.Wrote notes/hello.txt."
    assert run.events("result")[0]["status"] == "success"
    assert {h["x-goog-api-key"] for h in mock_gemini.request_headers} == {TOKEN}
    assert mock_gemini.request_models == ["gemini-2.5-pro"] * 3
    declared = {f["name"]: f["parametersJsonSchema"] for t in mock_gemini.requests[0]["tools"]
                for f in t.get("functionDeclarations", [])}
    assert declared["write_file"]["required"] == ["file_path", "content"]
    assert declared["run_shell_command"]["required"] == ["command"]
    assert "description" in declared["run_shell_command"]["properties"]


@needs_gemini
async def test_gemini_resume_sends_the_earlier_turns(mock_gemini: MockGemini, project: Path,
                                                     gemini_env: dict[str, str]) -> None:
    mock_gemini.script(["The first answer."])
    first = await run_cli(gemini_argv("First question."), project, gemini_env)
    assert first.exit_code == 0, first.stderr
    session_id = first.events("init")[0]["session_id"]
    mock_gemini.script(["The second answer."])
    second = await run_cli(gemini_argv("-Second question.", resume=session_id), project, gemini_env)
    assert second.exit_code == 0, second.stderr
    assert second.events("init")[0]["session_id"] == session_id
    turns = [(c["role"], c["parts"][-1].get("text")) for c in mock_gemini.requests[1]["contents"]]
    assert turns[-3:] == [("user", "First question."), ("model", "The first answer."), ("user", "-Second question.")]
    # Unlike Codex, the result's stats count this run only.
    stats = second.events("result")[0]["stats"]
    assert stats["input_tokens"] == mock_gemini.usages[1]["promptTokenCount"]


@needs_gemini
async def test_gemini_api_error_exits_with_the_status_mod_256(mock_gemini: MockGemini, project: Path,
                                                              gemini_env: dict[str, str]) -> None:
    mock_gemini.default = gm.error(400, "Prompt too long")
    run = await run_cli(gemini_argv("Hello."), project, gemini_env)
    assert run.exit_code == 400 % 256
    result = run.events("result")[0]
    assert result["status"] == "error" and "Prompt too long" in result["error"]["message"]
    assert len(mock_gemini.requests) == 1
