"""Failures of the environment around a task: each ends the task with an actionable error and harms nothing else."""

from __future__ import annotations

import dataclasses
import uuid

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from aicode.app import create_app
from aicode.settings import Settings
from tests.tasks_support import checkout_path, events, finished, of_type, submit

pytestmark = pytest.mark.timeout(180)


async def test_a_missing_image_fails_the_task_and_the_next_task_still_runs(task_app, workspace) -> None:
    ws, alice = workspace
    patched = await task_app.patch(f"/api/workspaces/{ws['id']}", json={"image": "aicode-no-such-image:1"},
                                   headers=alice)
    assert patched.status_code == 200
    task = await finished(task_app, alice, (await submit(task_app, alice, ws["id"], "@say hi"))["id"])
    assert task["status"] == "failed"
    assert "aicode-no-such-image:1" in task["error"] and "not found" in task["error"]
    await task_app.patch(f"/api/workspaces/{ws['id']}", json={"image": task_app.app.state.settings.workspace_image},
                         headers=alice)
    ok = await finished(task_app, alice, (await submit(task_app, alice, ws["id"], "@say hi"))["id"])
    assert ok["status"] == "succeeded"


async def test_an_unreachable_docker_engine_fails_the_task_saying_what_to_do(
    task_settings: Settings, source_repo, tmp_path
) -> None:
    from tests.conftest import ADMIN, login, wait_for_status

    broken = dataclasses.replace(task_settings, docker_url=f"unix://{tmp_path}/no-docker.sock")
    async with AsyncTestClient(app=create_app(broken)) as client:
        admin = await login(client, *ADMIN)
        await client.put("/api/me/credentials/anthropic", json={"api_key": "sk-test-key-1"}, headers=admin)
        created = (await client.post("/api/workspaces", json={"name": "p", "repo_url": str(source_repo)},
                                     headers=admin)).json()
        await wait_for_status(client, admin, created["id"])
        task = await finished(client, admin, (await submit(client, admin, created["id"], "@say hi"))["id"])
    assert task["status"] == "failed"
    assert "Docker engine not reachable" in task["error"]
    assert "AICODE_DOCKER_URL" in task["error"]


async def test_an_agent_killed_by_the_memory_limit_fails_with_that_reason(task_app, workspace) -> None:
    ws, alice = workspace
    await task_app.patch(f"/api/workspaces/{ws['id']}", json={"limits": {"memory_mb": 64}}, headers=alice)
    task = await finished(task_app, alice, (await submit(task_app, alice, ws["id"], "@alloc 512"))["id"])
    assert task["status"] == "failed"
    assert "memory limit" in task["error"] and "64" in task["error"]


async def test_a_task_without_any_model_credential_fails_saying_how_to_add_one(task_app, workspace) -> None:
    ws, alice = workspace
    assert (await task_app.delete("/api/me/credentials/anthropic", headers=alice)).status_code == 204
    task = await finished(task_app, alice, (await submit(task_app, alice, ws["id"], "@say hi"))["id"])
    assert task["status"] == "failed"
    assert "Settings page (Model keys)" in task["error"] and "/api/" not in task["error"]


async def test_the_credential_never_reaches_the_container_nor_an_event(task_app, workspace, database_url) -> None:
    ws, alice = workspace
    await task_app.patch(f"/api/workspaces/{ws['id']}", json={"network": "gateway"}, headers=alice)
    prompt = "@env ANTHROPIC_API_KEY\n@bash env; tr '\\0' '\\n' </proc/self/environ"
    task = await finished(task_app, alice, (await submit(task_app, alice, ws["id"], prompt))["id"])
    evs = await events(task_app, alice, task["id"])
    texts = " ".join(e["data"].get("text", "") for e in of_type(evs, "message"))
    # The agent has an "API key": the turn's capability token for the gateway, not alice's key.
    assert "ANTHROPIC_API_KEY is set" in texts
    environment = of_type(evs, "tool.result")[-1]["data"]["output"]
    assert "ANTHROPIC_API_KEY=aicode-turn-" in environment and "ANTHROPIC_BASE_URL=http://" in environment
    assert "sk-test-alice-key" not in repr(evs)
    conn = await asyncpg.connect(database_url)
    try:
        stored = await conn.fetchval("SELECT secret_enc FROM agent_credentials")
        dumped = repr(await conn.fetch("SELECT data FROM task_events"))
    finally:
        await conn.close()
    assert b"sk-test-alice-key" not in stored
    assert "sk-test-alice-key" not in dumped


async def test_the_credential_is_write_only(task_app, workspace) -> None:
    _, alice = workspace
    status = await task_app.get("/api/me/credentials/anthropic", headers=alice)
    assert status.json()["configured"] is True and status.json()["kind"] == "api_key"
    assert "sk-test-alice-key" not in status.text


@pytest.mark.parametrize(
    "body", [{}, {"api_key": "a-key-123", "oauth_token": "a-token-123"}, {"api_key": "short"}, {"api_key": 5},
             {"api_key": "has a space in it"}, {"key": "sk-something"}]
)
async def test_bad_credential_bodies_answer_400(task_app, workspace, body: dict) -> None:
    _, alice = workspace
    response = await task_app.put("/api/me/credentials/anthropic", json=body, headers=alice)
    assert response.status_code == 400
    assert response.json()["detail"]


async def test_huge_agent_output_is_capped_and_marked_not_crashed(task_app, workspace) -> None:
    ws, alice = workspace
    task = await finished(task_app, alice,
                          (await submit(task_app, alice, ws["id"], "@huge 3000000\n@huge_tool 200000\n@noise plain text\n@unknown"))["id"])
    assert task["status"] == "succeeded", task
    evs = await events(task_app, alice, task["id"])
    codes = {e["data"]["code"] for e in of_type(evs, "notice")}
    assert {"line_truncated", "agent_output", "unknown_event"} <= codes
    results = of_type(evs, "tool.result")
    assert any(r["data"]["truncated"] for r in results)
    assert max(len(r["data"]["output"].encode()) for r in results) <= 64 * 1024


@pytest.mark.parametrize(
    "body",
    [{}, {"prompt": ""}, {"prompt": 5}, {"prompt": "x", "max_turns": 0}, {"prompt": "x", "agent": "gpt"},
     {"prompt": "x", "timeout_s": 0}, {"prompt": "x", "base_branch": "../etc"}, {"prompt": "x", "color": "red"}],
)
async def test_invalid_task_bodies_answer_400_and_create_nothing(task_app, workspace, body: dict) -> None:
    ws, alice = workspace
    response = await task_app.post(f"/api/workspaces/{ws['id']}/tasks", json=body, headers=alice)
    assert response.status_code == 400
    assert (await task_app.get("/api/tasks", headers=alice)).json() == []


async def test_an_unknown_base_branch_answers_400(task_app, workspace) -> None:
    ws, alice = workspace
    response = await task_app.post(f"/api/workspaces/{ws['id']}/tasks",
                                   json={"prompt": "x", "base_branch": "no-such-branch"}, headers=alice)
    assert response.status_code == 400
    assert "no-such-branch" in response.json()["detail"]


async def test_a_task_can_start_from_another_branch(task_app, workspace) -> None:
    ws, alice = workspace
    task = await finished(task_app, alice,
                          (await submit(task_app, alice, ws["id"], "@write f.txt x", base_branch="feature"))["id"])
    assert task["status"] == "succeeded" and task["base_branch"] == "feature"


async def test_an_unknown_task_answers_404(task_app, workspace) -> None:
    _, alice = workspace
    assert (await task_app.get(f"/api/tasks/{uuid.uuid4()}", headers=alice)).status_code == 404


async def test_queued_tasks_are_picked_up_and_running_ones_marked_interrupted_on_start(
    task_settings: Settings, workspace, task_app, database_url: str
) -> None:
    ws, alice = workspace
    done = await finished(task_app, alice, (await submit(task_app, alice, ws["id"], "@say first"))["id"])
    conn = await asyncpg.connect(database_url)
    try:
        user_id = done["user_id"]
        queued_id = await conn.fetchval(
            """INSERT INTO tasks (workspace_id, user_id, prompt, pending_prompt, timeout_s, base_branch, branch)
               VALUES ($1, $2, '@write later.txt x', '@write later.txt x', 60, 'trunk', 'aicode/later') RETURNING id""",
            uuid.UUID(ws["id"]), uuid.UUID(user_id))
        await conn.execute("UPDATE tasks SET status = 'running' WHERE id = $1", uuid.UUID(done["id"]))
    finally:
        await conn.close()
    async with AsyncTestClient(app=create_app(task_settings)) as restarted:
        picked = await finished(restarted, alice, str(queued_id))
        interrupted = (await restarted.get(f"/api/tasks/{done['id']}", headers=alice)).json()
    assert picked["status"] == "succeeded"
    assert interrupted["status"] == "interrupted"
    assert "follow-up" in interrupted["error"]


async def test_work_left_by_a_crashed_turn_is_committed_as_partial_on_start(
    task_settings: Settings, workspace, task_app, database_url: str
) -> None:
    ws, alice = workspace
    task = await finished(task_app, alice, (await submit(task_app, alice, ws["id"], "@write first.txt 1"))["id"])
    # As if the server died mid-turn: the agent had written a file, the task was still running.
    (checkout_path(task_settings.data_dir, task["id"]) / "unsaved.txt").write_text("agent work\n")
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("UPDATE tasks SET status = 'running' WHERE id = $1", uuid.UUID(task["id"]))
    finally:
        await conn.close()
    async with AsyncTestClient(app=create_app(task_settings)) as restarted:
        after = (await restarted.get(f"/api/tasks/{task['id']}", headers=alice)).json()
        files = (await restarted.get(f"/api/tasks/{task['id']}/files", headers=alice)).json()
        evs = await events(restarted, alice, task["id"])
    assert after["status"] == "interrupted"
    assert after["head_commit"] != task["head_commit"]
    assert {f["path"] for f in files} == {"first.txt", "unsaved.txt"}
    commits = of_type(evs, "git.commit")
    assert commits[-1]["data"]["partial"] is True and commits[-1]["data"]["commit"] == after["head_commit"]
    assert evs[-1]["data"]["status"] == "interrupted"


async def test_a_workspace_that_is_not_ready_refuses_tasks(task_app, workspace, database_url: str) -> None:
    ws, alice = workspace
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("UPDATE workspaces SET status = 'error', error = 'boom' WHERE id = $1", uuid.UUID(ws["id"]))
    finally:
        await conn.close()
    response = await task_app.post(f"/api/workspaces/{ws['id']}/tasks", json={"prompt": "x"}, headers=alice)
    assert response.status_code == 409
    assert "boom" in response.json()["detail"]
