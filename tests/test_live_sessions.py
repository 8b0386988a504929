"""Live sessions with the fake agent in a real container: one agent process for many prompts, prompts over
HTTP and over the session's WebSocket, interrupt, terminate, idle expiry and a follow-up that resumes, text
deltas to live viewers only."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from aicode.app import create_app
from aicode.settings import Settings
from tests.conftest import ADMIN, login, make_user, wait_for_status
from tests.tasks_support import events, finished, of_type, wait_until

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
async def app(task_settings: Settings) -> AsyncIterator[AsyncTestClient]:
    settings = dataclasses.replace(task_settings, session_idle_s=600)
    async with AsyncTestClient(app=create_app(settings)) as client:
        yield client


async def _workspace(client: AsyncTestClient, source_repo: Any) -> tuple[str, dict[str, str]]:
    admin = await login(client, *ADMIN)
    alice = await make_user(client, admin, "alice")
    assert (await client.put("/api/me/credentials/anthropic", json={"api_key": "sk-test-alice-key"},
                             headers=alice)).status_code == 204
    created = await client.post("/api/workspaces", json={"name": "proj", "repo_url": str(source_repo)}, headers=alice)
    assert (await wait_for_status(client, alice, created.json()["id"]))["status"] == "ready"
    return created.json()["id"], alice


async def _session(client: AsyncTestClient, headers: dict[str, str], workspace: str, **body: Any) -> dict:
    created = await client.post(f"/api/workspaces/{workspace}/sessions", json=body, headers=headers)
    assert created.status_code == 201, created.text
    assert created.json()["kind"] == "session"
    return created.json()


async def _turns_done(client: AsyncTestClient, headers: dict[str, str], task_id: str, count: int,
                      timeout: float = 60) -> list[dict]:
    """The events once `count` turns of the session have been committed and recorded."""
    async with asyncio.timeout(timeout):
        while True:
            task = (await client.get(f"/api/tasks/{task_id}", headers=headers)).json()
            if task["turns"] >= count or task["status"] not in ("queued", "running"):
                return await events(client, headers, task_id)
            await asyncio.sleep(0.05)


def _texts(evs: list[dict]) -> list[str]:
    return [e["data"]["text"] for e in of_type(evs, "message") if e["data"]["kind"] == "text"]


async def test_three_prompts_run_in_one_agent_process_without_resuming(app: AsyncTestClient, source_repo) -> None:
    workspace, alice = await _workspace(app, source_repo)
    session = await _session(app, alice, workspace, prompt="@write one.txt first\n@bash echo pid=$PPID")
    evs = await _turns_done(app, alice, session["id"], 1)
    for prompt in ("@write two.txt second\n@bash echo pid=$PPID", "@bash echo pid=$PPID\n@say third turn"):
        response = await app.post(f"/api/tasks/{session['id']}/messages", json={"prompt": prompt}, headers=alice)
        assert response.status_code == 202, response.text
    evs = await _turns_done(app, alice, session["id"], 3)
    task = (await app.get(f"/api/tasks/{session['id']}", headers=alice)).json()
    assert task["status"] == "running" and task["turns"] == 3
    pids = {m for r in of_type(evs, "tool.result") for m in re.findall(r"pid=(\d+)", r["data"]["output"])}
    assert len(pids) == 1, pids  # one agent process answered every prompt
    assert len(of_type(evs, "agent.started")) == 1
    assert not any("resumed session" in text for text in _texts(evs))
    assert "third turn" in _texts(evs)
    commits = of_type(evs, "git.commit")
    assert len(commits) == 2 and commits[-1]["data"]["commit"] == task["head_commit"]  # the third changed nothing
    files = {f["path"] for f in (await app.get(f"/api/tasks/{session['id']}/files", headers=alice)).json()}
    assert files == {"one.txt", "two.txt"}
    ended = await app.delete(f"/api/sessions/{session['id']}", headers=alice)
    assert ended.status_code == 202
    final = await finished(app, alice, session["id"])
    assert final["status"] == "succeeded" and final["turns"] == 3


async def test_interrupt_commits_the_partial_turn_and_the_session_goes_on(app: AsyncTestClient, source_repo) -> None:
    workspace, alice = await _workspace(app, source_repo)
    session = await _session(app, alice, workspace, prompt="@write partial.txt made before\n@sleep 60")
    async with asyncio.timeout(60):
        while not of_type(await events(app, alice, session["id"]), "tool.result"):
            await asyncio.sleep(0.05)
    interrupted = await app.post(f"/api/tasks/{session['id']}/interrupt", headers=alice)
    assert interrupted.status_code == 202, interrupted.text
    evs = await _turns_done(app, alice, session["id"], 1, timeout=30)
    commit = of_type(evs, "git.commit")[-1]["data"]
    assert commit["partial"] is True
    assert any(n["data"]["code"] == "interrupted" for n in of_type(evs, "notice"))
    assert (await app.get(f"/api/tasks/{session['id']}", headers=alice)).json()["status"] == "running"
    await app.post(f"/api/tasks/{session['id']}/messages", json={"prompt": "@say still here"}, headers=alice)
    evs = await _turns_done(app, alice, session["id"], 2)
    assert "still here" in _texts(evs)
    await app.delete(f"/api/sessions/{session['id']}", headers=alice)
    assert (await finished(app, alice, session["id"]))["status"] == "succeeded"


async def test_the_websocket_takes_prompts_and_streams_deltas_that_replays_never_hold(
    app: AsyncTestClient, source_repo
) -> None:
    workspace, alice = await _workspace(app, source_repo)
    session = await _session(app, alice, workspace)  # no first prompt: it waits for one
    await wait_until(app, alice, session["id"], {"running"})
    seen: list[dict] = []
    with await app.websocket_connect(f"/ws/sessions/{session['id']}", headers=alice) as socket:
        socket.send_json({"type": "bogus"})
        socket.send_json({"type": "prompt", "text": "@say hello from the live session"})
        while not any(m.get("type") == "turn.completed" for m in seen):
            seen.append(socket.receive_json(timeout=30))
        while not any(m.get("type") == "session.idle" for m in seen[-3:]):
            seen.append(socket.receive_json(timeout=30))
        socket.send_json({"type": "terminate"})
        while not (seen[-1].get("type") == "task.status" and seen[-1]["data"]["status"] == "succeeded"):
            seen.append(socket.receive_json(timeout=30))
    errors = [m for m in seen if m.get("type") == "error"]
    assert errors and "bogus" in errors[0]["detail"]
    deltas = [m for m in seen if m.get("type") == "message.delta"]
    assert "".join(d["data"]["text"] for d in deltas) == "hello from the live session"
    assert all("seq" not in d for d in deltas)
    whole = next(m for m in seen if m.get("type") == "message")
    assert seen.index(deltas[0]) < seen.index(whole)
    stored = await events(app, alice, session["id"])
    assert not of_type(stored, "message.delta") and not of_type(stored, "session.idle")
    assert "hello from the live session" in _texts(stored)


async def test_an_idle_session_ends_and_a_follow_up_resumes_it(task_settings: Settings, source_repo) -> None:
    settings = dataclasses.replace(task_settings, session_idle_s=2)
    async with AsyncTestClient(app=create_app(settings)) as app:
        workspace, alice = await _workspace(app, source_repo)
        session = await _session(app, alice, workspace, prompt="@write kept.txt kept")
        ended = await finished(app, alice, session["id"], timeout=60)
        assert ended["status"] == "succeeded" and ended["turns"] == 1 and ended["session_id"]
        evs = await events(app, alice, session["id"])
        assert any(n["data"]["code"] == "session_ended" for n in of_type(evs, "notice"))
        response = await app.post(f"/api/tasks/{session['id']}/messages", json={"prompt": "@say again"},
                                  headers=alice)
        assert response.status_code == 202, response.text
        evs = await _turns_done(app, alice, session["id"], 2)
        assert any(text.startswith("resumed session with 1 earlier turn") for text in _texts(evs))
        assert (await app.get(f"/api/tasks/{session['id']}", headers=alice)).json()["session_id"] == \
            ended["session_id"]
        await app.delete(f"/api/sessions/{session['id']}", headers=alice)
        await finished(app, alice, session["id"])


async def test_only_people_who_may_run_tasks_talk_to_a_session(app: AsyncTestClient, source_repo) -> None:
    workspace, alice = await _workspace(app, source_repo)
    admin = await login(app, *ADMIN)
    bob = await make_user(app, admin, "bob")
    await app.put(f"/api/workspaces/{workspace}/members/bob", json={"role": "viewer"}, headers=alice)
    session = await _session(app, alice, workspace, prompt="@say hi")
    await _turns_done(app, alice, session["id"], 1)
    refused = await app.post(f"/api/tasks/{session['id']}/messages", json={"prompt": "@say bob"}, headers=bob)
    assert refused.status_code == 403
    assert (await app.post(f"/api/tasks/{session['id']}/interrupt", headers=bob)).status_code == 403
    assert (await app.delete(f"/api/sessions/{session['id']}", headers=bob)).status_code == 403
    assert (await app.delete(f"/api/sessions/{session['id']}", headers=alice)).status_code == 202
    await finished(app, alice, session["id"])
