"""End to end with the REAL Claude Code CLI inside the locally built image, against a mock Messages API."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest
from litestar.testing import AsyncTestClient

from aicode.app import create_app
from aicode.settings import Settings
from tests.conftest import ADMIN, login, wait_for_status
from tests.fakes.mock_anthropic import MockAnthropic, reply, text, tool_use
from tests.tasks_support import events, finished, of_type, submit

pytestmark = pytest.mark.timeout(300)

IMAGE = os.environ.get("AICODE_TEST_IMAGE", "aicode-workspace:test")


@pytest.fixture
async def mock() -> MockAnthropic:
    async with MockAnthropic() as server:
        yield server


@pytest.fixture
async def real_cli_app(settings: Settings, mock: MockAnthropic, monkeypatch: pytest.MonkeyPatch):
    # The container shares the host's network so the CLI reaches the mock on 127.0.0.1.
    monkeypatch.setenv("ANTHROPIC_BASE_URL", mock.url)
    real = dataclasses.replace(settings, workspace_image=IMAGE, workspace_network="host",
                               agent_env=("ANTHROPIC_BASE_URL",), task_timeout_s=240)
    async with AsyncTestClient(app=create_app(real)) as client:
        yield client


def _conversation_text(request: dict) -> str:
    return json.dumps(request.get("messages", []))


async def test_the_real_cli_writes_files_runs_a_command_and_resumes_for_a_follow_up(
    real_cli_app: AsyncTestClient, mock: MockAnthropic, source_repo
) -> None:
    client = real_cli_app
    admin = await login(client, *ADMIN)
    assert (await client.put("/api/me/credentials/anthropic", json={"api_key": "sk-ant-test-key"},
                             headers=admin)).status_code == 204
    created = (await client.post("/api/workspaces", json={"name": "e2e", "repo_url": str(source_repo)},
                                 headers=admin)).json()
    assert (await wait_for_status(client, admin, created["id"]))["status"] == "ready"

    mock.script([
        reply(text("I will write the file."), tool_use("Write", {"file_path": "/workspace/hello.txt",
                                                                  "content": "hello from the agent\n"})),
        reply(tool_use("Bash", {"command": "cat hello.txt && echo command-ran > ran.txt",
                                "description": "show the file"})),
        reply(text("Wrote hello.txt and ran.txt.")),
    ])
    task = await submit(client, admin, created["id"], "Create hello.txt, then run a command.")
    task = await finished(client, admin, task["id"], timeout=200)
    assert task["status"] == "succeeded", task
    assert task["session_id"]
    assert task["cost_usd"] >= 0 and task["output_tokens"] > 0

    evs = await events(client, admin, task["id"])
    assert [e["seq"] for e in evs] == list(range(1, len(evs) + 1))
    started = of_type(evs, "agent.started")[0]["data"]
    assert started["session_id"] == task["session_id"] and started["cwd"] == "/workspace"
    assert [c["data"]["name"] for c in of_type(evs, "tool.call")] == ["Write", "Bash"]
    bash_result = of_type(evs, "tool.result")[-1]["data"]
    assert bash_result["ok"] is True and "hello from the agent" in bash_result["output"]
    assert of_type(evs, "turn.completed")[0]["data"]["status"] == "succeeded"

    files = {f["path"]: f["status"] for f in (await client.get(f"/api/tasks/{task['id']}/files",
                                                                headers=admin)).json()}
    assert files == {"hello.txt": "added", "ran.txt": "added"}
    diff = (await client.get(f"/api/tasks/{task['id']}/diff", headers=admin)).text
    assert "+hello from the agent" in diff and "+command-ran" in diff
    # The second request carried the Write tool's result back to the model.
    assert "tool_result" in _conversation_text(mock.requests[1])

    first_turn_requests = len(mock.requests)
    mock.script([
        reply(tool_use("Write", {"file_path": "/workspace/second.txt", "content": "second turn\n"})),
        reply(text("Added second.txt.")),
    ])
    response = await client.post(f"/api/tasks/{task['id']}/messages", json={"prompt": "Now add second.txt."},
                                 headers=admin)
    assert response.status_code == 202
    second = await finished(client, admin, task["id"], timeout=200)
    assert second["status"] == "succeeded", second
    assert second["session_id"] == task["session_id"]
    # --resume: the model sees the earlier turn's conversation in the follow-up's first request.
    follow_up_request = _conversation_text(mock.requests[first_turn_requests])
    assert "Create hello.txt, then run a command." in follow_up_request
    assert "Wrote hello.txt and ran.txt." in follow_up_request
    assert "Now add second.txt." in follow_up_request

    evs = await events(client, admin, task["id"])
    commits = of_type(evs, "git.commit")
    assert len(commits) == 2 and commits[1]["data"]["commit"] == second["head_commit"]
    files = {f["path"] for f in (await client.get(f"/api/tasks/{task['id']}/files", headers=admin)).json()}
    assert files == {"hello.txt", "ran.txt", "second.txt"}


async def test_a_model_api_error_fails_the_task_with_the_status(
    real_cli_app: AsyncTestClient, mock: MockAnthropic, source_repo
) -> None:
    from tests.fakes.mock_anthropic import error

    client = real_cli_app
    admin = await login(client, *ADMIN)
    await client.put("/api/me/credentials/anthropic", json={"api_key": "sk-ant-bad-key"}, headers=admin)
    created = (await client.post("/api/workspaces", json={"name": "e2e", "repo_url": str(source_repo)},
                                 headers=admin)).json()
    await wait_for_status(client, admin, created["id"])
    # Every request fails: the CLI retries a 400 a few times quickly, then reports it
    # (401, 429 and 5xx answers it retries for over a minute).
    mock.responder = lambda body: error(400, "invalid request: prompt is malformed")
    task = await finished(client, admin, (await submit(client, admin, created["id"], "hi"))["id"], timeout=120)
    assert task["status"] == "failed"
    assert "400" in task["error"]
