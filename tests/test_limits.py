"""Nobody starves the rest: a fair queue, per-user and per-workspace running limits, queue and workspace caps."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import datetime

import pytest
from litestar.testing import AsyncTestClient

from aicode.app import create_app
from aicode.settings import Settings
from tests.conftest import ADMIN, login, make_user, wait_for_status
from tests.tasks_support import finished, submit, wait_until

pytestmark = pytest.mark.timeout(240)


async def app_with(task_settings: Settings, source_repo, **limits: int) -> AsyncIterator[tuple]:
    settings = dataclasses.replace(task_settings, **limits)
    async with AsyncTestClient(app=create_app(settings)) as client:
        admin = await login(client, *ADMIN)
        people = {}
        for name in ("alice", "bob"):
            people[name] = await make_user(client, admin, name)
            await client.put("/api/me/credentials/anthropic", json={"api_key": f"sk-{name}-key"}, headers=people[name])
        ws = (await client.post("/api/workspaces", json={"name": "shared", "repo_url": str(source_repo)},
                                headers=people["alice"])).json()
        await client.put(f"/api/workspaces/{ws['id']}/members/bob", json={"role": "editor"}, headers=people["alice"])
        assert (await wait_for_status(client, people["alice"], ws["id"]))["status"] == "ready"
        yield client, ws, people["alice"], people["bob"]


def started(task: dict) -> datetime:
    return datetime.fromisoformat(task["started_at"])


async def test_one_persons_long_queue_delays_anothers_task_by_one_slot_at_most(task_settings, source_repo) -> None:
    async for client, ws, alice, bob in app_with(task_settings, source_repo, max_concurrent_tasks=1):
        # alice's first turn holds the only slot until she cancels it: her whole queue is waiting when bob asks.
        # (Short turns could run out while the others are still being submitted: on a busy machine the first
        # was over before the test looked for it running.)
        holding = await submit(client, alice, ws["id"], "@sleep 60")
        await wait_until(client, alice, holding["id"], {"running"})
        backlog = [holding, *[await submit(client, alice, ws["id"], "@sleep 0.5") for _ in range(11)]]
        mine = await submit(client, bob, ws["id"], "@say hi")
        cancelled = await client.post(f"/api/tasks/{holding['id']}/cancel", headers=alice)
        assert cancelled.status_code == 202, cancelled.text
        done = await finished(client, bob, mine["id"], timeout=120)
        alices = [await finished(client, alice, t["id"], timeout=200) for t in backlog]
        assert done["status"] == "succeeded"
        # bob's turn ran right after the one that was running when he asked, before alice's second.
        assert started(alices[0]) < started(done) < started(alices[1])


async def test_a_requester_runs_no_more_than_their_share_while_others_use_the_rest(task_settings, source_repo) -> None:
    async for client, ws, alice, bob in app_with(task_settings, source_repo, max_concurrent_tasks=2,
                                                 max_running_per_user=1):
        first, second = [await submit(client, alice, ws["id"], "@sleep 3") for _ in range(2)]
        await wait_until(client, alice, first["id"], {"running"})
        other = await submit(client, bob, ws["id"], "@sleep 1")
        await wait_until(client, bob, other["id"], {"running"})
        assert (await client.get(f"/api/tasks/{second['id']}", headers=alice)).json()["status"] == "queued"
        for task in (first, second, other):
            assert (await finished(client, alice, task["id"]))["status"] == "succeeded"


async def test_a_workspace_runs_no_more_than_its_limit(task_settings, source_repo) -> None:
    async for client, ws, alice, bob in app_with(task_settings, source_repo, max_concurrent_tasks=2,
                                                 max_running_per_workspace=1):
        first = await submit(client, alice, ws["id"], "@sleep 2")
        await wait_until(client, alice, first["id"], {"running"})
        second = await submit(client, bob, ws["id"], "@say hi")
        assert (await client.get(f"/api/tasks/{second['id']}", headers=bob)).json()["status"] == "queued"
        done = await finished(client, bob, second["id"])
        assert started(done) >= datetime.fromisoformat((await finished(client, alice, first["id"]))["finished_at"])


async def test_a_full_queue_answers_429_with_retry_after(task_settings, source_repo) -> None:
    async for client, ws, alice, bob in app_with(task_settings, source_repo, max_concurrent_tasks=1,
                                                 max_queued_per_user=2):
        running = await submit(client, alice, ws["id"], "@sleep 5")
        await wait_until(client, alice, running["id"], {"running"})
        for _ in range(2):
            await submit(client, alice, ws["id"], "@say queued")
        refused = await client.post(f"/api/workspaces/{ws['id']}/tasks", json={"prompt": "@say one more"},
                                    headers=alice)
        assert refused.status_code == 429 and refused.headers["retry-after"]
        assert "AICODE_MAX_QUEUED_PER_USER" in refused.json()["detail"]
        # Another person's queue is their own.
        await submit(client, bob, ws["id"], "@say bob")
        await client.post(f"/api/tasks/{running['id']}/cancel", headers=alice)


async def test_timeouts_above_the_servers_maximum_and_too_many_workspaces_are_refused(
    task_settings, source_repo
) -> None:
    async for client, ws, alice, _bob in app_with(task_settings, source_repo, max_task_timeout_s=600,
                                                 max_workspaces_per_user=1):
        long = await client.post(f"/api/workspaces/{ws['id']}/tasks", json={"prompt": "x", "timeout_s": 601},
                                 headers=alice)
        assert long.status_code == 400 and "600" in long.json()["detail"]
        another = await client.post("/api/workspaces", json={"name": "second", "repo_url": str(source_repo)},
                                    headers=alice)
        assert another.status_code == 429 and "AICODE_MAX_WORKSPACES_PER_USER" in another.json()["detail"]
        admin = await login(client, *ADMIN)
        assert (await client.post("/api/workspaces", json={"name": "second", "repo_url": str(source_repo)},
                                  headers=admin)).status_code == 201
