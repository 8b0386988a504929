"""Live sessions with the REAL Claude Code CLI in the locally built image, against the mock Messages API
behind aicode's gateway: one CLI process reads the prompts on stdin, the model sees one growing
conversation, an interrupt stops a long tool call and the session goes on."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from aicode.app import create_app
from aicode.settings import Settings
from tests.conftest import ADMIN, login, make_user, wait_for_status
from tests.fakes.mock_anthropic import MockAnthropic, reply, text, tool_use
from tests.tasks_support import events, finished, of_type

pytestmark = pytest.mark.timeout(300)

IMAGE = os.environ.get("AICODE_TEST_IMAGE", "aicode-workspace:test")


@pytest.fixture
async def mock() -> AsyncIterator[MockAnthropic]:
    async with MockAnthropic() as server:
        yield server


@pytest.fixture
async def app(settings: Settings, mock: MockAnthropic) -> AsyncIterator[AsyncTestClient]:
    real = dataclasses.replace(settings, workspace_image=IMAGE, anthropic_upstream=mock.url, task_timeout_s=240)
    async with AsyncTestClient(app=create_app(real)) as client:
        yield client


async def _workspace(client: AsyncTestClient, source_repo: Any) -> tuple[str, dict[str, str]]:
    admin = await login(client, *ADMIN)
    alice = await make_user(client, admin, "alice")
    assert (await client.put("/api/me/credentials/anthropic", json={"api_key": "sk-ant-alice-key"},
                             headers=alice)).status_code == 204
    created = await client.post("/api/workspaces", json={"name": "e2e", "repo_url": str(source_repo)}, headers=alice)
    assert (await wait_for_status(client, alice, created.json()["id"]))["status"] == "ready"
    return created.json()["id"], alice


async def _turns(client: AsyncTestClient, headers: dict[str, str], task_id: str, count: int) -> dict:
    async with asyncio.timeout(200):
        while True:
            task = (await client.get(f"/api/tasks/{task_id}", headers=headers)).json()
            if task["turns"] >= count or task["status"] not in ("queued", "running"):
                return task
            await asyncio.sleep(0.1)


def _conversation(request: dict) -> str:
    return json.dumps(request.get("messages", []))


async def test_one_cli_process_takes_three_prompts_as_one_conversation(
    app: AsyncTestClient, mock: MockAnthropic, source_repo
) -> None:
    workspace, alice = await _workspace(app, source_repo)
    mock.script([
        reply(tool_use("Write", {"file_path": "/workspace/one.txt", "content": "one\n"})),
        reply(text("Wrote one.txt.")),
        reply(text("Second answer.")),
        reply(text("Third answer.")),
    ])
    created = await app.post(f"/api/workspaces/{workspace}/sessions", json={"prompt": "First: write one.txt"},
                             headers=alice)
    assert created.status_code == 201, created.text
    session = created.json()
    task = await _turns(app, alice, session["id"], 1)
    assert task["status"] == "running" and task["head_commit"], task
    for turn, prompt in ((2, "Second prompt"), (3, "Third prompt")):
        response = await app.post(f"/api/tasks/{session['id']}/messages", json={"prompt": prompt}, headers=alice)
        assert response.status_code == 202, response.text
        task = await _turns(app, alice, session["id"], turn)
        assert task["status"] == "running", task
    # One growing conversation: the last request holds every earlier prompt and answer.
    last = _conversation(mock.requests[-1])
    for said in ("First: write one.txt", "Wrote one.txt.", "Second prompt", "Second answer.", "Third prompt"):
        assert said in last
    evs = await events(app, alice, session["id"])
    assert len(of_type(evs, "agent.started")) == 1  # one process, never resumed
    assert [c["data"]["status"] for c in of_type(evs, "turn.completed")] == ["succeeded"] * 3
    assert (await app.delete(f"/api/sessions/{session['id']}", headers=alice)).status_code == 202
    final = await finished(app, alice, session["id"])
    assert final["status"] == "succeeded" and final["turns"] == 3


async def test_an_interrupt_stops_a_long_tool_call_and_the_session_goes_on(
    app: AsyncTestClient, mock: MockAnthropic, source_repo
) -> None:
    workspace, alice = await _workspace(app, source_repo)
    mock.script([
        reply(tool_use("Write", {"file_path": "/workspace/partial.txt", "content": "before the interrupt\n"})),
        # Not a bare `sleep`: Claude Code refuses those and the turn would end at once.
        reply(tool_use("Bash", {"command": "python3 -c 'import time; time.sleep(120)'",
                                "description": "wait a long time"})),
    ])
    session = (await app.post(f"/api/workspaces/{workspace}/sessions", json={"prompt": "Write, then wait."},
                              headers=alice)).json()
    async with asyncio.timeout(120):
        while not any(c["data"]["name"] == "Bash" for c in of_type(await events(app, alice, session["id"]),
                                                                   "tool.call")):
            await asyncio.sleep(0.1)
    evs = await events(app, alice, session["id"])
    bash = next(c for c in of_type(evs, "tool.call") if c["data"]["name"] == "Bash")["data"]["call_id"]
    assert not [r for r in of_type(evs, "tool.result") if r["data"]["call_id"] == bash]  # still running
    started = asyncio.get_running_loop().time()
    assert (await app.post(f"/api/tasks/{session['id']}/interrupt", headers=alice)).status_code == 202
    task = await _turns(app, alice, session["id"], 1)
    assert asyncio.get_running_loop().time() - started < 20
    assert task["status"] == "running", task
    evs = await events(app, alice, session["id"])
    assert of_type(evs, "git.commit")[-1]["data"]["partial"] is True
    files = {f["path"] for f in (await app.get(f"/api/tasks/{session['id']}/files", headers=alice)).json()}
    assert files == {"partial.txt"}
    mock.script([reply(text("Still here."))])
    await app.post(f"/api/tasks/{session['id']}/messages", json={"prompt": "Are you there?"}, headers=alice)
    task = await _turns(app, alice, session["id"], 2)
    assert task["status"] == "running"
    texts = [m["data"]["text"] for m in of_type(await events(app, alice, session["id"]), "message")]
    assert "Still here." in texts
    await app.delete(f"/api/sessions/{session['id']}", headers=alice)
    await finished(app, alice, session["id"])


async def test_each_prompt_runs_with_its_authors_key(app: AsyncTestClient, mock: MockAnthropic, source_repo) -> None:
    workspace, alice = await _workspace(app, source_repo)
    admin = await login(app, *ADMIN)
    bob = await make_user(app, admin, "bob")
    carol = await make_user(app, admin, "carol")
    assert (await app.put("/api/me/credentials/anthropic", json={"api_key": "sk-ant-bob-key"},
                          headers=bob)).status_code == 204
    for name in ("bob", "carol"):
        await app.put(f"/api/workspaces/{workspace}/members/{name}", json={"role": "editor"}, headers=alice)
    mock.script([reply(text("Alice's answer.")), reply(text("Bob's answer."))])
    session = (await app.post(f"/api/workspaces/{workspace}/sessions", json={"prompt": "From alice"},
                              headers=alice)).json()
    await _turns(app, alice, session["id"], 1)
    assert (await app.post(f"/api/tasks/{session['id']}/messages", json={"prompt": "From bob"},
                           headers=bob)).status_code == 202
    await _turns(app, alice, session["id"], 2)
    keys = [{k.lower(): v for k, v in headers.items()}["x-api-key"] for headers in mock.request_headers]
    assert keys[0] == "sk-ant-alice-key" and keys[-1] == "sk-ant-bob-key"
    # Carol has no key, and the workspace no team key: her prompt is skipped, the session goes on.
    await app.post(f"/api/tasks/{session['id']}/messages", json={"prompt": "From carol"}, headers=carol)
    async with asyncio.timeout(60):
        while not any(n["data"]["code"] == "no_credential" for n in of_type(await events(app, alice, session["id"]),
                                                                            "notice")):
            await asyncio.sleep(0.1)
    assert (await app.get(f"/api/tasks/{session['id']}", headers=alice)).json()["status"] == "running"
    await app.delete(f"/api/sessions/{session['id']}", headers=alice)
    await finished(app, alice, session["id"])
