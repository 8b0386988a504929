"""End to end with the REAL Codex and Gemini CLIs inside the locally built image, each against a mock of its
provider's API (the Responses API over SSE; `streamGenerateContent?alt=sse`) behind aicode's gateway, on the
default network policy: the container reaches only the gateway, with a per-turn capability token."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from aicode.app import create_app
from aicode.settings import Settings
from tests.conftest import ADMIN, login, make_user, wait_for_status
from tests.fakes import mock_gemini, mock_openai
from tests.tasks_support import events, finished, of_type, submit, wait_until

pytestmark = pytest.mark.timeout(300)

IMAGE = os.environ.get("AICODE_TEST_IMAGE", "aicode-workspace:test")
REAL_KEY = "sk-real-provider-key-0123456789"


@dataclass
class Agent:
    """One agent CLI and its mock: how to script the same scenarios for either."""

    name: str
    provider: str
    mock: Any
    write: Callable[[str, str], Any]  # a file write the CLI performs with its own file tool
    shell: Callable[[str], Any]
    reply: Callable[..., Any]
    error: Callable[[int, str], Any]

    def conversation(self, index: int) -> str:
        return json.dumps(self.mock.requests[index])

    def key_sent(self, index: int) -> str:
        headers = {name.lower(): value for name, value in self.mock.request_headers[index].items()}
        return headers.get("x-goog-api-key") or headers.get("authorization", "").removeprefix("Bearer ")


def _codex(mock: mock_openai.MockOpenAI) -> Agent:
    return Agent("codex", "openai", mock,
                 write=lambda path, content: mock_openai.apply_patch(mock_openai.add_file(path, content)),
                 shell=mock_openai.shell, reply=mock_openai.reply, error=mock_openai.error)


def _gemini(mock: mock_gemini.MockGemini) -> Agent:
    return Agent("gemini", "gemini", mock, write=mock_gemini.write_file,
                 shell=lambda command: mock_gemini.run_shell_command(command, "run it"),
                 reply=mock_gemini.reply, error=lambda status, message: mock_gemini.error(status, message))


@pytest.fixture(params=["codex", "gemini"])
async def agent(request: pytest.FixtureRequest) -> AsyncIterator[Agent]:
    if request.param == "codex":
        async with mock_openai.MockOpenAI() as server:
            yield _codex(server)
    else:
        async with mock_gemini.MockGemini() as server:
            yield _gemini(server)


@pytest.fixture
async def app(settings: Settings, agent: Agent) -> AsyncIterator[AsyncTestClient]:
    upstreams = ({"openai_upstream": agent.mock.url + "/v1"} if agent.name == "codex"
                 else {"gemini_upstream": agent.mock.url})
    real = dataclasses.replace(settings, workspace_image=IMAGE, task_timeout_s=240, **upstreams)
    async with AsyncTestClient(app=create_app(real)) as client:
        yield client


async def _workspace(client: AsyncTestClient, agent: Agent, source_repo: Any) -> tuple[dict[str, str], str]:
    admin = await login(client, *ADMIN)
    alice = await make_user(client, admin, "alice")
    stored = await client.put(f"/api/me/credentials/{agent.provider}", json={"api_key": REAL_KEY}, headers=alice)
    assert stored.status_code == 204, stored.text
    created = await client.post("/api/workspaces", json={"name": "e2e", "repo_url": str(source_repo)}, headers=alice)
    assert created.status_code == 201, created.text
    assert (await wait_for_status(client, alice, created.json()["id"]))["status"] == "ready"
    return alice, created.json()["id"]


async def test_a_task_writes_a_file_runs_a_command_and_a_follow_up_resumes(
    app: AsyncTestClient, agent: Agent, source_repo: Any
) -> None:
    alice, workspace = await _workspace(app, agent, source_repo)
    agent.mock.script([
        agent.reply("I'll create the file.", agent.write("hello.txt", "hello from the agent\n")),
        agent.reply(agent.shell("cat hello.txt && env > env.txt")),
        agent.reply("Wrote hello.txt and env.txt."),
    ])
    task = await submit(app, alice, workspace, "Create hello.txt, then run a command.", agent=agent.name)
    task = await finished(app, alice, task["id"], timeout=200)
    assert task["status"] == "succeeded", task
    assert task["agent"] == agent.name and task["session_id"]
    assert task["input_tokens"] > 0 and task["cost_usd"] > 0  # metered by the gateway, priced by the table

    evs = await events(app, alice, task["id"])
    started = of_type(evs, "agent.started")[0]["data"]
    assert started["session_id"] == task["session_id"] and started["cwd"] == "/workspace"
    calls = [call["data"] for call in of_type(evs, "tool.call")]
    assert [call["name"] for call in calls] == ["Write", "Bash"], json.dumps([(e["type"], e["data"]) for e in evs])
    assert "cat hello.txt" in calls[1]["input"]["command"]
    results = {r["data"]["call_id"]: r["data"] for r in of_type(evs, "tool.result")}
    assert "hello from the agent" in results[calls[1]["call_id"]]["output"]
    assert [m["data"]["text"] for m in of_type(evs, "message") if m["data"]["kind"] == "text"][-1] == (
        "Wrote hello.txt and env.txt.")
    usage = of_type(evs, "usage")[-1]["data"]
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert of_type(evs, "turn.completed")[-1]["data"]["status"] == "succeeded"

    files = {f["path"]: f["status"] for f in (await app.get(f"/api/tasks/{task['id']}/files", headers=alice)).json()}
    assert files == {"hello.txt": "added", "env.txt": "added"}
    diff = (await app.get(f"/api/tasks/{task['id']}/diff", headers=alice)).text
    assert "+hello from the agent" in diff
    # The key never entered the container: the CLI held a capability token, which the gateway swapped.
    assert REAL_KEY not in diff
    assert "aicode-turn-" in diff
    assert all(agent.key_sent(i) == REAL_KEY for i in range(len(agent.mock.requests)))

    first_turn = len(agent.mock.requests)
    agent.mock.script([agent.reply(agent.write("second.txt", "second turn\n")), agent.reply("Added second.txt.")])
    response = await app.post(f"/api/tasks/{task['id']}/messages", json={"prompt": "Now add second.txt."},
                              headers=alice)
    assert response.status_code == 202, response.text
    second = await finished(app, alice, task["id"], timeout=200)
    assert second["status"] == "succeeded", second
    assert second["session_id"] == task["session_id"]
    # The follow-up resumed the session: its first request carries the earlier turn.
    resumed = agent.conversation(first_turn)
    assert "Create hello.txt, then run a command." in resumed and "Now add second.txt." in resumed
    files = {f["path"] for f in (await app.get(f"/api/tasks/{task['id']}/files", headers=alice)).json()}
    assert files == {"hello.txt", "env.txt", "second.txt"}
    evs = await events(app, alice, task["id"])
    assert len(of_type(evs, "git.commit")) == 2
    # Per-turn usage: the follow-up's figures are its own, not the session's running total.
    turn_usages = [u["data"]["input_tokens"] for u in of_type(evs, "usage")]
    assert second["input_tokens"] == task["input_tokens"] + turn_usages[-1]


async def test_an_api_error_fails_the_task_fast_with_the_providers_message(
    app: AsyncTestClient, agent: Agent, source_repo: Any
) -> None:
    alice, workspace = await _workspace(app, agent, source_repo)
    agent.mock.script([agent.error(400, "This model does not exist (mock)")])
    started = time.monotonic()
    task = await submit(app, alice, workspace, "Say hi.", agent=agent.name)
    task = await finished(app, alice, task["id"], timeout=120)
    assert task["status"] == "failed", task
    assert "This model does not exist (mock)" in task["error"]
    assert time.monotonic() - started < 60
    assert len(agent.mock.requests) == 1  # no retries


async def test_cancel_during_a_long_shell_command_stops_within_seconds(
    app: AsyncTestClient, agent: Agent, source_repo: Any
) -> None:
    alice, workspace = await _workspace(app, agent, source_repo)
    agent.mock.script([agent.reply(agent.write("partial.txt", "made before the cancel\n")),
                       agent.reply(agent.shell("sleep 300"))])
    task = await submit(app, alice, workspace, "Write a file, then wait.", agent=agent.name)
    await agent.mock.wait_for_requests(2, timeout=120)
    await wait_until(app, alice, task["id"], {"running"}, timeout=30)
    evs = []
    deadline = time.monotonic() + 60
    while not any(e["data"].get("name") == "Bash" for e in of_type(evs, "tool.call")):
        assert time.monotonic() < deadline, evs
        evs = await events(app, alice, task["id"])
    cancelled_at = time.monotonic()
    assert (await app.post(f"/api/tasks/{task['id']}/cancel", headers=alice)).status_code == 202
    task = await finished(app, alice, task["id"], timeout=60)
    assert time.monotonic() - cancelled_at < 20
    assert task["status"] == "cancelled", task
    files = {f["path"] for f in (await app.get(f"/api/tasks/{task['id']}/files", headers=alice)).json()}
    assert files == {"partial.txt"}  # the work done before the cancel is committed


async def test_the_agents_list_shows_the_clis_in_the_image_and_the_keys_held(
    app: AsyncTestClient, agent: Agent, source_repo: Any
) -> None:
    alice, workspace = await _workspace(app, agent, source_repo)
    listed = await app.get("/api/agents", params={"workspace_id": workspace}, headers=alice)
    assert listed.status_code == 200, listed.text
    agents = {item["name"]: item for item in listed.json()}
    assert set(agents) == {"claude", "codex", "gemini"}
    assert all(item["available"] and item["version"] for item in agents.values()), agents
    assert agents["codex"]["version"] == "0.171.0" and agents["gemini"]["version"] == "0.61.0"
    assert agents[agent.name]["credential"] is True and agents[agent.name]["missing"] is None
    other = "gemini" if agent.name == "codex" else "codex"
    assert agents[other]["credential"] is False and "key" in agents[other]["missing"]
