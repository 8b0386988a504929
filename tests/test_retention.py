"""Retention and the disk: `aicode gc` removes what old ended tasks keep (their rows, events and branches
stay, and a follow-up still works), and new tasks are refused below the free-space floor."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from aicode.app import create_app
from aicode.settings import Settings
from tests.tasks_support import checkout_path, events, finished, of_type, submit, submit_follow_up

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parent.parent


def _gc(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AICODE_")}
    env.update({"AICODE_DATABASE_URL": str(settings.database_url), "AICODE_DATA_DIR": str(settings.data_dir),
                "AICODE_SECRET_KEY": str(settings.secret_key)})
    return subprocess.run([sys.executable, "-m", "aicode", "gc", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60)


async def test_gc_removes_old_working_copies_and_state_but_keeps_the_task(
        task_app: AsyncTestClient, task_settings: Settings, workspace: tuple[dict, dict[str, str]]) -> None:
    ws, alice = workspace
    old = await submit(task_app, alice, ws["id"], "@write old.txt from long ago")
    assert (await finished(task_app, alice, old["id"]))["status"] == "succeeded"
    recent = await submit(task_app, alice, ws["id"], "@write new.txt from today")
    assert (await finished(task_app, alice, recent["id"]))["status"] == "succeeded"
    conn = await asyncpg.connect(task_settings.database_url)
    try:
        await conn.execute("UPDATE tasks SET finished_at = now() - interval '10 days' WHERE id = $1", old["id"])
        stored_before = await conn.fetchval("SELECT count(*) FROM task_objects WHERE task_id = $1", old["id"])
    finally:
        await conn.close()
    assert stored_before >= 1
    assert checkout_path(task_settings.data_dir, old["id"]).is_dir()

    refused = await asyncio.to_thread(_gc, task_settings)
    assert refused.returncode == 2 and "--older-than-days" in refused.stderr
    done = await asyncio.to_thread(_gc, task_settings, "--older-than-days", "7", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["working_copies"] == 1 and report["central_states"] == 1
    assert report["working_copy_bytes"] > 0 and report["central_bytes"] > 0
    assert report["freed_bytes"] == report["working_copy_bytes"] + report["central_bytes"]
    assert not checkout_path(task_settings.data_dir, old["id"]).exists()
    assert checkout_path(task_settings.data_dir, recent["id"]).is_dir()

    # The task, its events and its diff stay; a follow-up starts a new session on the same branch.
    kept = (await task_app.get(f"/api/tasks/{old['id']}", headers=alice)).json()
    assert kept["status"] == "succeeded" and kept["head_commit"] and kept["session_id"] is None
    assert of_type(await events(task_app, alice, old["id"]), "git.commit")
    diff = await task_app.get(f"/api/tasks/{old['id']}/diff", headers=alice)
    assert diff.status_code == 200 and "old.txt" in diff.text
    again = await submit_follow_up(task_app, alice, old["id"], "@read old.txt")
    assert again["status"] == "succeeded"
    results = of_type(await events(task_app, alice, old["id"]), "tool.result")
    assert "from long ago" in results[-1]["data"]["output"]
    texts = [e["data"]["text"] for e in of_type(await events(task_app, alice, old["id"]), "message")]
    assert not any(text.startswith("resumed session") for text in texts)

    second = await asyncio.to_thread(_gc, task_settings, "--older-than-days", "7")
    assert second.returncode == 0 and second.stdout.startswith("freed 0.0 MB"), second.stdout


async def test_below_the_disk_floor_new_tasks_are_refused_and_readyz_warns(
        task_settings: Settings, source_repo: Path) -> None:
    from tests.conftest import ADMIN, login, make_user, wait_for_status

    full = dataclasses.replace(task_settings, min_free_disk_mb=10**9)  # a petabyte: more than any test machine has
    async with AsyncTestClient(app=create_app(full)) as client:
        admin = await login(client, *ADMIN)
        alice = await make_user(client, admin, "alice")
        await client.put("/api/me/credentials/anthropic", json={"api_key": "sk-alice-key"}, headers=alice)
        created = await client.post("/api/workspaces", json={"name": "p", "repo_url": str(source_repo)}, headers=alice)
        ws = await wait_for_status(client, alice, created.json()["id"])
        refused = await client.post(f"/api/workspaces/{ws['id']}/tasks", json={"prompt": "@say hi"}, headers=alice)
        assert refused.status_code == 507, refused.text
        assert "AICODE_MIN_FREE_DISK_MB" in refused.json()["detail"] and refused.headers["retry-after"] == "300"
        assert (await client.get("/api/tasks", headers=alice)).json() == []
        ready = await client.get("/readyz")
        assert ready.json()["checks"]["disk"] == "low"
        assert any("AICODE_MIN_FREE_DISK_MB" in w for w in ready.json()["warnings"])
