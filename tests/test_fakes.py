"""The agent test doubles behave like the real thing.

The fake `claude` runs in its image under the server's container hardening and must
speak the stream-json protocol of docs/claude-stream-json.md; the REAL CLI runs
against MockAnthropic and must do real work from the mock's scripted answers. A last
test runs one scenario through both and compares the shape of what they print.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiodocker
import aiohttp
import pytest

from tests.fakes.containers import ContainerOutput, container_config, run_container, started_container
from tests.fakes.fixtures import (  # noqa: F401  (fixtures)
    agent_config_dir,
    agent_workspace,
    docker_client,
    fake_image,
    mock_anthropic,
    workspace_image,
)
from tests.fakes.images import fake_image_tag
from tests.fakes.mock_anthropic import MockAnthropic, error, reply, text, thinking, tool_use

docker_test = pytest.mark.timeout(120)
CLAUDE_FLAGS = ["--output-format", "stream-json", "--verbose", "--dangerously-skip-permissions"]
# What docs/claude-stream-json.md guarantees on each kind of line.
INIT_KEYS = {"session_id", "cwd", "model", "tools", "claude_code_version"}
ASSISTANT_MESSAGE_KEYS = {"id", "role", "model", "content", "usage"}
RESULT_KEYS = {"subtype", "is_error", "duration_ms", "num_turns", "session_id", "total_cost_usd", "usage"}


def agent_config(image: str, prompt: str, workspace: Path, config_dir: Path, *extra: str,
                 env: dict[str, str] | None = None, network_mode: str = "none") -> dict[str, Any]:
    return container_config(
        image, ["claude", "-p", prompt, *CLAUDE_FLAGS, *extra],
        binds={str(workspace): "/workspace", str(config_dir): "/claude-config"},
        env={"CLAUDE_CONFIG_DIR": "/claude-config", "DISABLE_AUTOUPDATER": "1", **(env or {})},
        network_mode=network_mode,
    )


async def run_fake(docker: aiodocker.Docker, image: str, prompt: str, workspace: Path, config_dir: Path,
                   *extra: str, env: dict[str, str] | None = None) -> ContainerOutput:
    return await run_container(docker, agent_config(image, prompt, workspace, config_dir, *extra, env=env))


async def run_real(docker: aiodocker.Docker, image: str, mock: MockAnthropic, prompt: str, workspace: Path,
                   config_dir: Path, *extra: str) -> ContainerOutput:
    env = {"ANTHROPIC_BASE_URL": mock.url, "ANTHROPIC_API_KEY": "test-key",
           "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}
    config = agent_config(image, prompt, workspace, config_dir, *extra, env=env, network_mode="host")
    return await run_container(docker, config, timeout=90)


def documented(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The lines the doc defines for a plain run (init, assistant, user, result)."""
    return [e for e in events if e.get("type") in ("assistant", "user", "result")
            or (e.get("type") == "system" and e.get("subtype") == "init")]


def shape(event: dict[str, Any]) -> tuple[Any, ...]:
    if event["type"] in ("assistant", "user"):
        content = event["message"]["content"]
        return (event["type"], *(b["type"] for b in content)) if isinstance(content, list) else (event["type"], "str")
    if event["type"] == "result":
        return ("result", event["subtype"], event["is_error"])
    return (event["type"], event.get("subtype"))


def assert_follows_protocol(output: ContainerOutput) -> list[dict[str, Any]]:
    """Init first, result last, one block per assistant line, the documented fields everywhere."""
    events = documented(output.events())
    assert events[0]["type"] == "system" and INIT_KEYS <= events[0].keys(), events[0]
    assert events[-1]["type"] == "result" and RESULT_KEYS <= events[-1].keys(), events[-1]
    session_id = events[0]["session_id"]
    for event in events[1:-1]:
        assert event["type"] in ("assistant", "user"), event
        assert event["session_id"] == session_id
        if event["type"] == "assistant":
            assert ASSISTANT_MESSAGE_KEYS <= event["message"].keys()
            assert len(event["message"]["content"]) == 1
        else:
            for block in event["message"]["content"]:
                assert block["type"] == "tool_result" and {"tool_use_id", "content"} <= block.keys()
    assert events[-1]["session_id"] == session_id
    return events


def texts(output: ContainerOutput) -> list[str]:
    return [b["text"] for e in output.events("assistant") for b in e["message"]["content"] if b["type"] == "text"]


# --- the fake image ---------------------------------------------------------------------
@docker_test
async def test_fake_image_tag_names_the_script_and_the_base(docker_client: aiodocker.Docker, fake_image: str,
                                                             workspace_image: str) -> None:
    base_id = (await docker_client.images.inspect(workspace_image))["Id"]
    assert fake_image == fake_image_tag(base_id)
    assert fake_image_tag(base_id, b"other script") != fake_image
    assert fake_image_tag("sha256:other-base") != fake_image


# --- the fake claude, in its container --------------------------------------------------
@docker_test
async def test_fake_write_creates_the_file_on_the_host(docker_client: aiodocker.Docker, fake_image: str,
                                                       agent_workspace: Path, agent_config_dir: Path) -> None:
    output = await run_fake(docker_client, fake_image, "@write notes/a.txt first\\nsecond", agent_workspace,
                            agent_config_dir)
    assert output.exit_code == 0, output.stderr
    assert (agent_workspace / "notes" / "a.txt").read_text() == "first\nsecond"


@docker_test
async def test_fake_bash_and_delete_really_run_in_the_workspace(
        docker_client: aiodocker.Docker, fake_image: str, agent_workspace: Path, agent_config_dir: Path) -> None:
    (agent_workspace / "old.txt").write_text("old")
    prompt = "@bash echo made > made.txt && cat made.txt\n@delete old.txt\n@bash exit 3"
    output = await run_fake(docker_client, fake_image, prompt, agent_workspace, agent_config_dir)
    results = [b for e in output.events("user") for b in e["message"]["content"]]
    assert [(r["content"], r["is_error"]) for r in results] == [
        ("made", False), ("(Bash completed with no output)", False), ("Exit code 3", True)]
    assert (agent_workspace / "made.txt").read_text() == "made\n"
    assert not (agent_workspace / "old.txt").exists()


@docker_test
async def test_fake_output_follows_the_documented_protocol(
        docker_client: aiodocker.Docker, fake_image: str, agent_workspace: Path, agent_config_dir: Path) -> None:
    prompt = "Let me see.\n@think planning\n@write a.txt hi\n@noise not json\n@unknown\n@tool_error\nAll done."
    output = await run_fake(docker_client, fake_image, prompt, agent_workspace, agent_config_dir)
    assert output.exit_code == 0, output.stderr
    events = assert_follows_protocol(output)
    assert [shape(e) for e in events] == [
        ("system", "init"), ("assistant", "text"), ("assistant", "thinking"), ("assistant", "tool_use"),
        ("user", "tool_result"), ("assistant", "tool_use"), ("user", "tool_result"), ("assistant", "text"),
        ("result", "success", False)]
    # Blocks of one API message share its id; a tool result starts a new message.
    ids = [e["message"]["id"] for e in events if e["type"] == "assistant"]
    assert ids[0] == ids[1] == ids[2] != ids[3] != ids[4]
    assert events[6]["message"]["content"][0]["is_error"] is True
    assert "not json" in output.stdout_lines
    assert {"type": "mystery_event", "foo": 1} in output.events()
    result = events[-1]
    assert result["result"] == "All done." and result["num_turns"] == 3
    assert result["total_cost_usd"] > 0 and result["usage"]["output_tokens"] > 0


@docker_test
async def test_fake_resume_keeps_the_session(docker_client: aiodocker.Docker, fake_image: str,
                                             agent_workspace: Path, agent_config_dir: Path) -> None:
    first = await run_fake(docker_client, fake_image, "first turn", agent_workspace, agent_config_dir)
    session_id = first.result["session_id"]
    assert (agent_config_dir / "projects" / "-workspace" / f"{session_id}.jsonl").is_file()

    second = await run_fake(docker_client, fake_image, "second turn", agent_workspace, agent_config_dir,
                            f"--resume={session_id}")
    assert second.exit_code == 0, second.stderr
    assert second.events("system", "init")[0]["session_id"] == session_id
    assert second.result["session_id"] == session_id
    assert texts(second) == ["resumed session with 1 earlier turn(s)", "second turn"]


@docker_test
async def test_fake_resume_of_an_unknown_session_fails_like_the_cli(
        docker_client: aiodocker.Docker, fake_image: str, agent_workspace: Path, agent_config_dir: Path) -> None:
    missing = "11111111-2222-3333-4444-555555555555"
    output = await run_fake(docker_client, fake_image, "hi", agent_workspace, agent_config_dir, "--resume", missing)
    assert output.exit_code == 1
    assert output.result["is_error"] is True and output.result["subtype"] == "error_during_execution"
    assert f"No conversation found with session ID: {missing}" in output.stderr


@docker_test
async def test_fake_api_error_ends_with_exit_1(docker_client: aiodocker.Docker, fake_image: str,
                                               agent_workspace: Path, agent_config_dir: Path) -> None:
    output = await run_fake(docker_client, fake_image, "@api_error 401", agent_workspace, agent_config_dir)
    assert output.exit_code == 1
    assert output.result["is_error"] is True and output.result["subtype"] == "success"
    assert output.result["api_error_status"] == 401
    assert output.result["result"].startswith("API Error: 401")


@docker_test
async def test_fake_max_turns_ends_with_error_max_turns(docker_client: aiodocker.Docker, fake_image: str,
                                                        agent_workspace: Path, agent_config_dir: Path) -> None:
    output = await run_fake(docker_client, fake_image, "@bash true\n@bash true", agent_workspace, agent_config_dir,
                            "--max-turns", "1")
    assert output.exit_code == 1
    assert output.result["subtype"] == "error_max_turns" and output.result["is_error"] is True


@docker_test
async def test_fake_refuses_stream_json_without_verbose(docker_client: aiodocker.Docker, fake_image: str) -> None:
    config = container_config(fake_image, ["claude", "-p", "hi", "--output-format", "stream-json"])
    output = await run_container(docker_client, config)
    assert output.exit_code == 1 and output.stdout_lines == []
    assert "requires --verbose" in output.stderr


@docker_test
async def test_fake_reports_user_and_env_without_values(
        docker_client: aiodocker.Docker, fake_image: str, agent_workspace: Path, agent_config_dir: Path) -> None:
    secret = "sk-ant-very-secret-value"
    output = await run_fake(docker_client, fake_image, "@whoami\n@env ANTHROPIC_API_KEY\n@env NOT_THERE",
                            agent_workspace, agent_config_dir, env={"ANTHROPIC_API_KEY": secret})
    assert texts(output) == ["uid=1000 gid=1000 cwd=/workspace", "ANTHROPIC_API_KEY is set", "NOT_THERE is not set"]
    assert secret not in output.stdout + output.stderr


@docker_test
async def test_fake_streams_lines_live_and_dies_on_sigterm(
        docker_client: aiodocker.Docker, fake_image: str, agent_workspace: Path, agent_config_dir: Path) -> None:
    config = agent_config(fake_image, "@say started\n@sleep 60\n@say never", agent_workspace, agent_config_dir)
    async with started_container(docker_client, config) as running:
        await running.wait_for_line(lambda line: '"started"' in line, timeout=20)
        await running.kill("SIGTERM")  # claude is PID 1: only a handled signal stops it
        output = await running.wait(timeout=10)
    assert output.exit_code == 143
    assert output.result is None


@docker_test
async def test_fake_huge_lines_arrive_whole(docker_client: aiodocker.Docker, fake_image: str,
                                            agent_workspace: Path, agent_config_dir: Path) -> None:
    output = await run_fake(docker_client, fake_image, "@huge 2000000\n@huge_tool 1500000", agent_workspace,
                            agent_config_dir)
    assert output.exit_code == 0
    assert [len(t) for t in texts(output)][:1] == [2_000_000]
    tool_output = output.events("user")[0]["message"]["content"][0]["content"]
    assert len(tool_output) == 1_500_000


@docker_test
async def test_fake_special_exits(docker_client: aiodocker.Docker, fake_image: str, agent_workspace: Path,
                                  agent_config_dir: Path) -> None:
    no_result = await run_fake(docker_client, fake_image, "hi\n@no_result", agent_workspace, agent_config_dir)
    assert no_result.exit_code == 0 and no_result.result is None and texts(no_result) == ["hi"]
    exited = await run_fake(docker_client, fake_image, "@stderr going\n@exit 7", agent_workspace, agent_config_dir)
    assert exited.exit_code == 7 and exited.result is None and exited.stderr_lines == ["going"]


@docker_test
async def test_fake_takes_turns_over_stdin_stream_json(docker_client: aiodocker.Docker, fake_image: str,
                                                       agent_workspace: Path, agent_config_dir: Path) -> None:
    config = container_config(
        fake_image, ["claude", "-p", "--input-format", "stream-json", *CLAUDE_FLAGS],
        binds={str(agent_workspace): "/workspace"}, tmpfs={"/tmp": "rw", "/home/agent": "rw,uid=1000"})
    turns = [{"type": "user", "message": {"role": "user", "content": prompt}} for prompt in ("one", "two")]
    output = await run_container(docker_client, config, stdin="".join(json.dumps(t) + "\n" for t in turns).encode())
    assert output.exit_code == 0, output.stderr
    assert [r["result"] for r in output.events("result")] == ["one", "two"]
    assert len({e["session_id"] for e in output.events()}) == 1


# --- the mock Messages API, over HTTP -----------------------------------------------------
async def post_messages(mock: MockAnthropic, body: dict[str, Any]) -> tuple[int, list[tuple[str, dict[str, Any]]]]:
    """POST /v1/messages; the status and the (event, data) pairs of the SSE answer."""
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{mock.url}/v1/messages?beta=true", json=body) as response:
            raw = await response.text()
            if response.content_type != "text/event-stream":
                return response.status, [("json", json.loads(raw))]
    events = []
    for chunk in raw.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in chunk.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return response.status, events


async def test_mock_streams_a_scripted_reply_as_messages_api_events(mock_anthropic: MockAnthropic) -> None:
    mock_anthropic.script([[thinking("hmm"), text("Hello"), tool_use("Bash", {"command": "ls -la"}, id="toolu_1")]])
    body = {"model": "claude-test", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    status, events = await post_messages(mock_anthropic, body)
    assert status == 200
    assert all(name == data["type"] for name, data in events)
    kinds = [name for name, _ in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert kinds.count("content_block_start") == kinds.count("content_block_stop") == 3
    assert events[0][1]["message"]["model"] == "claude-test"
    assert events[0][1]["message"]["usage"]["input_tokens"] > 0
    deltas = [d["delta"] for name, d in events if name == "content_block_delta"]
    pieces = [d["partial_json"] for d in deltas if d["type"] == "input_json_delta"]
    assert len(pieces) >= 2 and json.loads("".join(pieces)) == {"command": "ls -la"}
    assert "".join(d["text"] for d in deltas if d["type"] == "text_delta") == "Hello"
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"
    assert mock_anthropic.requests == [body]


async def test_mock_answers_done_when_the_script_runs_out(mock_anthropic: MockAnthropic) -> None:
    mock_anthropic.script(["first"])
    body = {"model": "m", "stream": True, "messages": []}
    answers = []
    for _ in range(2):
        _, events = await post_messages(mock_anthropic, body)
        answers.append("".join(d["delta"].get("text", "") for name, d in events if name == "content_block_delta"))
        assert events[-2][1]["delta"]["stop_reason"] == "end_turn"
    assert answers == ["first", "done"]


async def test_mock_error_replies_carry_the_api_error_body(mock_anthropic: MockAnthropic) -> None:
    mock_anthropic.script([error(401, "invalid x-api-key")])
    status, [(_, body)] = await post_messages(mock_anthropic, {"model": "m", "stream": True, "messages": []})
    assert status == 401
    assert body == {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}


async def test_mock_responder_sees_the_request(mock_anthropic: MockAnthropic) -> None:
    mock_anthropic.responder = lambda body: reply(f"you said {body['messages'][-1]['content']}")
    status, [(_, message)] = await post_messages(
        mock_anthropic, {"model": "m", "messages": [{"role": "user", "content": "ping"}]})
    assert status == 200 and message["content"] == [{"type": "text", "text": "you said ping"}]


async def test_mock_logs_other_paths_harmlessly(mock_anthropic: MockAnthropic) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{mock_anthropic.url}/v1/messages/count_tokens", json={"messages": []}) as response:
            assert response.status == 200 and "input_tokens" in await response.json()
        async with http.get(f"{mock_anthropic.url}/api/hello") as response:
            assert response.status == 200
    assert [r.path for r in mock_anthropic.other_requests] == ["/v1/messages/count_tokens", "/api/hello"]
    assert mock_anthropic.requests == []


# --- the REAL Claude Code CLI against the mock ----------------------------------------------
@docker_test
async def test_real_cli_runs_a_scripted_session_and_resumes_it(
        docker_client: aiodocker.Docker, workspace_image: str, mock_anthropic: MockAnthropic,
        agent_workspace: Path, agent_config_dir: Path) -> None:
    mock_anthropic.script([
        [tool_use("Write", {"file_path": "/workspace/hello.txt", "content": "hello from the mock\n"})],
        [text("Checking."), tool_use("Bash", {"command": "cat hello.txt"})],
        [text("All done.")],
    ])
    output = await run_real(docker_client, workspace_image, mock_anthropic, "write hello.txt", agent_workspace,
                            agent_config_dir)
    assert output.exit_code == 0, output.stdout + output.stderr
    assert (agent_workspace / "hello.txt").read_text() == "hello from the mock\n"
    events = assert_follows_protocol(output)
    assert output.result["is_error"] is False and output.result["result"] == "All done."
    assert {"system", "assistant", "user", "result"} <= {e["type"] for e in events}
    bash_result = [b for e in output.events("user") for b in e["message"]["content"]][1]
    assert bash_result["content"] == "hello from the mock"
    # The CLI sent step 1's tool result back in request 2.
    assert len(mock_anthropic.requests) == 3
    second_request = mock_anthropic.requests[1]["messages"]
    write_ids = [b["id"] for m in second_request if m["role"] == "assistant" for b in m["content"]
                 if b.get("type") == "tool_use" and b["name"] == "Write"]
    assert len(write_ids) == 1
    assert second_request[-1]["role"] == "user"
    assert any(b.get("type") == "tool_result" and b["tool_use_id"] == write_ids[0]
               for b in second_request[-1]["content"])

    session_id = output.result["session_id"]
    assert (agent_config_dir / "projects" / "-workspace" / f"{session_id}.jsonl").is_file()
    mock_anthropic.script([[text("Resumed fine.")]])
    resumed = await run_real(docker_client, workspace_image, mock_anthropic, "and now?", agent_workspace,
                             agent_config_dir, f"--resume={session_id}")
    assert resumed.exit_code == 0, resumed.stdout + resumed.stderr
    assert resumed.result["session_id"] == session_id and resumed.result["result"] == "Resumed fine."
    conversation = json.dumps(mock_anthropic.requests[-1]["messages"])
    assert "write hello.txt" in conversation and "All done." in conversation and "and now?" in conversation


@docker_test
async def test_real_cli_reports_an_api_401(docker_client: aiodocker.Docker, workspace_image: str,
                                           mock_anthropic: MockAnthropic, agent_workspace: Path,
                                           agent_config_dir: Path) -> None:
    mock_anthropic.default = error(401, "invalid x-api-key")
    output = await run_real(docker_client, workspace_image, mock_anthropic, "hi", agent_workspace, agent_config_dir)
    assert output.exit_code == 1
    assert output.result["is_error"] is True and output.result["api_error_status"] == 401
    assert len(mock_anthropic.requests) == 1  # x-should-retry: false stops the CLI's retries


@docker_test
async def test_fake_and_real_print_the_same_shape_for_the_same_work(
        docker_client: aiodocker.Docker, workspace_image: str, fake_image: str, mock_anthropic: MockAnthropic,
        tmp_path: Path) -> None:
    dirs = {}
    for name in ("fake", "real"):
        dirs[name] = (tmp_path / name / "ws", tmp_path / name / "cfg")
        for folder in dirs[name]:
            folder.mkdir(parents=True)
            folder.chmod(0o777)
    fake = await run_fake(docker_client, fake_image, "@write a.txt hi\n@bash cat a.txt\nAll done.", *dirs["fake"])
    mock_anthropic.script([[tool_use("Write", {"file_path": "/workspace/a.txt", "content": "hi"})],
                           [tool_use("Bash", {"command": "cat a.txt"})], [text("All done.")]])
    real = await run_real(docker_client, workspace_image, mock_anthropic, "go", *dirs["real"])
    fake_events, real_events = assert_follows_protocol(fake), assert_follows_protocol(real)
    assert [shape(e) for e in fake_events] == [shape(e) for e in real_events]
    for fake_event, real_event in zip(fake_events, real_events):
        if fake_event["type"] in ("assistant", "user"):
            assert fake_event["message"]["content"][0].keys() <= real_event["message"]["content"][0].keys() | {"is_error"}
    assert fake.result["num_turns"] == real.result["num_turns"] == 3
    assert fake.result["result"] == real.result["result"] == "All done."
    assert (dirs["fake"][0] / "a.txt").read_text() == (dirs["real"][0] / "a.txt").read_text() == "hi"
