"""End to end with the REAL Claude Code CLI inside the locally built image, against a mock Messages API."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import pygit2
import pytest
from litestar.testing import AsyncTestClient

from aicode.app import create_app
from aicode.settings import Settings
from tests.conftest import ADMIN, login, make_user, wait_for_status
from tests.fakes.mock_anthropic import MockAnthropic, reply, text, tool_use
from tests.tasks_support import events, finished, mirror_path, of_type, submit, submit_follow_up, task_ref

pytestmark = pytest.mark.timeout(300)

IMAGE = os.environ.get("AICODE_TEST_IMAGE", "aicode-workspace:test")


@pytest.fixture
async def mock() -> MockAnthropic:
    async with MockAnthropic() as server:
        yield server


@pytest.fixture
async def real_cli_app(settings: Settings, mock: MockAnthropic):
    # The default network policy: the CLI reaches only the gateway, which forwards to the mock.
    real = dataclasses.replace(settings, workspace_image=IMAGE, anthropic_upstream=mock.url, task_timeout_s=240)
    async with AsyncTestClient(app=create_app(real)) as client:
        yield client


def _conversation_text(request: dict) -> str:
    return json.dumps(request.get("messages", []))


def _lower(headers: dict[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


async def _store_credential(client: AsyncTestClient, headers: dict[str, str], **credential: str) -> None:
    stored = await client.put("/api/me/credentials/anthropic", json=credential, headers=headers)
    assert stored.status_code == 204, stored.text


async def _ready_workspace(client: AsyncTestClient, headers: dict[str, str], source_repo: Path,
                           name: str = "e2e") -> dict:
    created = await client.post("/api/workspaces", json={"name": name, "repo_url": str(source_repo)},
                                headers=headers)
    assert created.status_code == 201, created.text
    ready = await wait_for_status(client, headers, created.json()["id"])
    assert ready["status"] == "ready", ready
    return ready


async def _alice_with_a_workspace(client: AsyncTestClient, source_repo: Path,
                                  key: str = "sk-ant-alice-key") -> tuple[dict[str, str], dict, dict[str, str]]:
    """(admin's headers, alice's ready workspace, alice's headers); alice has stored `key`."""
    admin = await login(client, *ADMIN)
    alice = await make_user(client, admin, "alice")
    await _store_credential(client, alice, api_key=key)
    return admin, await _ready_workspace(client, alice, source_repo), alice


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


# -- through the gateway -----------------------------------------------------------------------------


async def test_the_real_cli_reaches_the_model_through_the_gateway_and_never_holds_the_key(
    real_cli_app: AsyncTestClient, mock: MockAnthropic, source_repo
) -> None:
    client = real_cli_app
    _, ws, alice = await _alice_with_a_workspace(client, source_repo)
    mock.script([
        reply(tool_use("Bash", {"command": "env; tr '\\0' '\\n' </proc/self/environ",
                                "description": "show the environment"})),
        reply(text("That is the environment.")),
    ])
    task = await finished(client, alice, (await submit(client, alice, ws["id"], "Show the environment."))["id"],
                          timeout=200)
    assert task["status"] == "succeeded", task
    evs = await events(client, alice, task["id"])
    environment = of_type(evs, "tool.result")[-1]["data"]["output"]
    assert "ANTHROPIC_API_KEY=aicode-turn-" in environment
    assert "sk-ant-alice-key" not in repr(evs)
    assert len(mock.request_headers) >= 2
    for headers in map(_lower, mock.request_headers):
        assert headers["x-api-key"] == "sk-ant-alice-key"
        assert "aicode-turn-" not in repr(headers)


async def test_a_follow_up_by_another_user_runs_with_that_users_credential(
    real_cli_app: AsyncTestClient, mock: MockAnthropic, settings: Settings, source_repo
) -> None:
    client = real_cli_app
    admin, ws, alice = await _alice_with_a_workspace(client, source_repo, key="sk-ant-key-of-alice")
    await _store_credential(client, admin, api_key="sk-ant-key-of-admin")
    mock.script([reply(tool_use("Write", {"file_path": "/workspace/first.txt", "content": "alice's turn\n"})),
                 reply(text("Wrote first.txt."))])
    task = await finished(client, alice, (await submit(client, alice, ws["id"], "Write first.txt."))["id"],
                          timeout=200)
    assert task["status"] == "succeeded", task
    first_turn_calls = len(mock.request_headers)

    mock.script([reply(tool_use("Write", {"file_path": "/workspace/second.txt", "content": "admin's turn\n"})),
                 reply(text("Wrote second.txt."))])
    followed = await submit_follow_up(client, admin, task["id"], "Now write second.txt.", timeout=200)
    assert followed["status"] == "succeeded", followed

    keys = [_lower(headers).get("x-api-key") for headers in mock.request_headers]
    assert first_turn_calls >= 2 and len(keys) >= first_turn_calls + 2
    assert set(keys[:first_turn_calls]) == {"sk-ant-key-of-alice"}
    assert set(keys[first_turn_calls:]) == {"sk-ant-key-of-admin"}
    repo = pygit2.Repository(str(mirror_path(settings.data_dir, ws["id"])))
    head = repo.references[task_ref(task["id"])].peel(pygit2.Commit)
    assert str(head.id) == followed["head_commit"]
    assert head.author.name == "admin"
    assert repo[head.parent_ids[0]].author.name == "alice"


async def test_an_oauth_token_reaches_the_model_as_a_bearer_token_with_the_oauth_beta(
    real_cli_app: AsyncTestClient, mock: MockAnthropic, source_repo
) -> None:
    client = real_cli_app
    admin = await login(client, *ADMIN)
    await _store_credential(client, admin, oauth_token="sk-ant-oat01-test-token")
    ws = await _ready_workspace(client, admin, source_repo)
    mock.script([reply(text("Hello."))])
    task = await finished(client, admin, (await submit(client, admin, ws["id"], "Say hello."))["id"], timeout=200)
    assert task["status"] == "succeeded", task
    assert mock.request_headers
    for headers in map(_lower, mock.request_headers):
        assert headers["authorization"] == "Bearer sk-ant-oat01-test-token"
        assert "oauth-2025-04-20" in headers["anthropic-beta"].split(",")
        assert "sk-ant-oat01-test-token" not in headers.get("x-api-key", "")


# -- spend caps --------------------------------------------------------------------------------------


async def test_a_spent_max_cost_stops_the_real_cli_at_once_naming_max_cost_usd(
    real_cli_app: AsyncTestClient, mock: MockAnthropic, source_repo
) -> None:
    client = real_cli_app
    _, ws, alice = await _alice_with_a_workspace(client, source_repo)
    # The first answer costs far more than the cap; the call after the tool ran must be refused.
    mock.script([reply(tool_use("Bash", {"command": "echo ran > ran.txt", "description": "run"})),
                 reply(text("This answer must never be asked for."))])
    started = time.monotonic()
    task = await submit(client, alice, ws["id"], "Run a command.", max_cost_usd=0.000001)
    task = await finished(client, alice, task["id"], timeout=200)
    took = time.monotonic() - started
    assert task["status"] == "failed", task
    assert "max_cost_usd" in task["error"]
    assert took < 60, f"the CLI took {took:.1f} s to give up"
    assert len(mock.requests) == 1
    evs = await events(client, alice, task["id"])
    assert "budget_exhausted" in {e["data"]["code"] for e in of_type(evs, "notice")}


async def test_a_spent_monthly_user_budget_fails_the_next_task_at_once_naming_it(
    real_cli_app: AsyncTestClient, mock: MockAnthropic, source_repo
) -> None:
    client = real_cli_app
    admin, ws, alice = await _alice_with_a_workspace(client, source_repo)
    alice_id = (await client.get("/api/me", headers=alice)).json()["id"]
    patched = await client.patch(f"/api/admin/users/{alice_id}", json={"monthly_budget_usd": 0}, headers=admin)
    assert patched.status_code == 200, patched.text
    started = time.monotonic()
    task = await finished(client, alice, (await submit(client, alice, ws["id"], "Say hello."))["id"], timeout=200)
    took = time.monotonic() - started
    assert task["status"] == "failed", task
    assert "alice's monthly budget" in task["error"]
    assert took < 60, f"the CLI took {took:.1f} s to give up"
    assert mock.requests == []


async def test_a_spent_workspace_budget_fails_the_next_task_at_once_naming_it(
    real_cli_app: AsyncTestClient, mock: MockAnthropic, source_repo
) -> None:
    client = real_cli_app
    admin, ws, alice = await _alice_with_a_workspace(client, source_repo)
    patched = await client.patch(f"/api/workspaces/{ws['id']}", json={"monthly_budget_usd": 0}, headers=admin)
    assert patched.status_code == 200, patched.text
    started = time.monotonic()
    task = await finished(client, alice, (await submit(client, alice, ws["id"], "Say hello."))["id"], timeout=200)
    took = time.monotonic() - started
    assert task["status"] == "failed", task
    assert "the workspace e2e's monthly budget" in task["error"]
    assert took < 60, f"the CLI took {took:.1f} s to give up"
    assert mock.requests == []


async def test_my_usage_shows_what_a_task_spent_this_month(
    real_cli_app: AsyncTestClient, mock: MockAnthropic, source_repo
) -> None:
    client = real_cli_app
    _, ws, alice = await _alice_with_a_workspace(client, source_repo)
    before = (await client.get("/api/me/usage", headers=alice)).json()
    assert before == {"month_spent_usd": 0, "monthly_budget_usd": None}
    mock.script([reply(text("Hello."))])
    task = await finished(client, alice, (await submit(client, alice, ws["id"], "Say hello."))["id"], timeout=200)
    assert task["status"] == "succeeded", task
    usage = (await client.get("/api/me/usage", headers=alice)).json()
    assert usage["month_spent_usd"] > 0


async def test_the_real_cli_resumes_its_session_on_another_node(
    settings: Settings, mock: MockAnthropic, source_repo, tmp_path: Path
) -> None:
    # Two nodes sharing the database; the first is gone by the time of the follow-up.
    first = dataclasses.replace(settings, workspace_image=IMAGE, anthropic_upstream=mock.url, task_timeout_s=240,
                                node_name="first")
    second = dataclasses.replace(first, data_dir=tmp_path / "second-node", node_name="second")
    async with AsyncTestClient(app=create_app(first)) as client:
        _, workspace, alice = await _alice_with_a_workspace(client, source_repo)
        mock.script([
            reply(tool_use("Write", {"file_path": "/workspace/hello.txt", "content": "hello from node one\n"})),
            reply(text("Wrote hello.txt on the first node.")),
        ])
        task = await finished(client, alice, (await submit(client, alice, workspace["id"], "Create hello.txt."))["id"],
                              timeout=200)
        assert (task["status"], task["node"]) == ("succeeded", "first"), task
    first_turn_requests = len(mock.requests)
    async with AsyncTestClient(app=create_app(second)) as client:
        mock.script([
            reply(tool_use("Write", {"file_path": "/workspace/second.txt", "content": "second node\n"})),
            reply(text("Added second.txt.")),
        ])
        again = await submit_follow_up(client, alice, task["id"], "Now add second.txt.", timeout=200)
        assert (again["status"], again["node"], again["turns"]) == ("succeeded", "second", 2), again
        assert again["session_id"] == task["session_id"]
        # --resume on the second node: the model sees the first node's conversation.
        resumed = _conversation_text(mock.requests[first_turn_requests])
        assert "Create hello.txt." in resumed and "Wrote hello.txt on the first node." in resumed
        files = {f["path"] for f in (await client.get(f"/api/tasks/{task['id']}/files", headers=alice)).json()}
        assert files == {"hello.txt", "second.txt"}
        assert (second.data_dir / "tasks" / task["id"] / "checkout" / "hello.txt").read_text() == "hello from node one\n"
