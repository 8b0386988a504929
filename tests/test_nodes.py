"""Several nodes: three `aicode serve` processes with their own data dirs share one PostgreSQL and Redis.

The queue lives in the database: every turn runs exactly once on some node, a cancel reaches the
node that runs the turn, and a node killed with SIGKILL loses its turns to `interrupted` once its
lease runs out, while the others carry on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiodocker
import httpx
import pytest

from tests.conftest import ADMIN
from tests.test_cli import Server, base_env, serve

# serial: the nodes' leases and the cancel are held to a few seconds, which other tests' load would stretch.
pytestmark = [pytest.mark.timeout(600), pytest.mark.serial]

LEASE_S = 3
TERMINAL = {"succeeded", "failed", "cancelled", "interrupted"}


def node_env(tmp_path: Path, name: str, database_url: str, image: str, capacity: int) -> dict[str, str]:
    return base_env(
        tmp_path / name, AICODE_DATABASE_URL=database_url, AICODE_NODE_NAME=name,
        AICODE_NODE_LEASE_S=str(LEASE_S), AICODE_WORKSPACE_IMAGE=image, AICODE_WORKSPACE_NETWORK="none",
        AICODE_MAX_CONCURRENT_TASKS=str(capacity), AICODE_BOOTSTRAP_ADMIN=":".join(ADMIN),
        AICODE_LOCAL_REPO_ROOTS=str(tmp_path / "repos"), AICODE_SECRET_KEY="nodes-share-this-secret-key-0123",
        AICODE_REDIS_URL=os.environ.get("AICODE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
    )


@contextlib.contextmanager
def nodes(tmp_path: Path, database_url: str, image: str, names: tuple[str, ...], capacity: int = 2
          ) -> Iterator[dict[str, Server]]:
    """`aicode serve` as each of `names`, with a data dir of its own (the same one each time a name returns)."""
    with contextlib.ExitStack() as stack:
        yield {name: stack.enter_context(serve(node_env(tmp_path, name, database_url, image, capacity),
                                               tmp_path / "logs"))
               for name in names}


class Api:
    opened: list[Api] = []

    def __init__(self, server: Server, token: str) -> None:
        self.client = httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {token}"},
                                        timeout=30)
        Api.opened.append(self)

    async def task(self, task_id: str) -> dict:
        response = await self.client.get(f"/api/tasks/{task_id}")
        assert response.status_code == 200, response.text
        return response.json()

    async def until(self, task_id: str, statuses: set[str], timeout: float = 60) -> dict:
        async with asyncio.timeout(timeout):
            while (task := await self.task(task_id))["status"] not in statuses:
                await asyncio.sleep(0.1)
        return task


@pytest.fixture(autouse=True)
async def _close_clients() -> AsyncIterator[None]:
    yield
    while Api.opened:
        await Api.opened.pop().client.aclose()


async def _token(server: Server, username: str, password: str) -> str:
    async with httpx.AsyncClient(base_url=server.url) as client:
        response = await client.post("/api/auth/login", json={"username": username, "password": password})
        assert response.status_code == 200, response.text
        return response.json()["access_token"]


async def _alice(server: Server, source_repo: Path) -> tuple[Api, str]:
    """alice, with a key and a ready workspace on the source repo: her API on `server` and the workspace id."""
    admin = Api(server, await _token(server, *ADMIN))
    made = await admin.client.post("/api/admin/users", json={"username": "alice", "password": "alice-password"})
    assert made.status_code == 201, made.text
    await admin.client.aclose()
    alice = Api(server, await _token(server, "alice", "alice-password"))
    stored = await alice.client.put("/api/me/credentials/anthropic", json={"api_key": "sk-test-alice-key"})
    assert stored.status_code == 204, stored.text
    created = await alice.client.post("/api/workspaces", json={"name": "proj", "repo_url": str(source_repo)})
    assert created.status_code == 201, created.text
    workspace_id = created.json()["id"]
    async with asyncio.timeout(60):
        while (ws := (await alice.client.get(f"/api/workspaces/{workspace_id}")).json())["status"] == "cloning":
            await asyncio.sleep(0.1)
    assert ws["status"] == "ready", ws
    return alice, workspace_id


def _on(server: Server, api: Api) -> Api:
    """The same person's API on another node."""
    return Api(server, api.client.headers["Authorization"].removeprefix("Bearer "))


async def _submit(api: Api, workspace_id: str, prompt: str) -> str:
    response = await api.client.post(f"/api/workspaces/{workspace_id}/tasks", json={"prompt": prompt})
    assert response.status_code == 202, response.text
    return response.json()["id"]


async def _running_statuses(api: Api, task_id: str) -> list[dict]:
    response = await api.client.get(f"/api/tasks/{task_id}/events")
    assert response.status_code == 200, response.text
    return [e for e in response.json() if e["type"] == "task.status" and e["data"]["status"] == "running"]


async def test_thirty_tasks_submitted_to_one_node_run_once_each_spread_over_all_three(
    tmp_path: Path, database_url: str, fake_image: str, source_repo: Path
) -> None:
    with nodes(tmp_path, database_url, fake_image, ("n1", "n2", "n3")) as servers:
        alice, workspace_id = await _alice(servers["n1"], source_repo)
        ids = [await _submit(alice, workspace_id, f"@write out-{i}.txt {i}\n@sleep 0.5") for i in range(30)]
        ended = [await alice.until(task_id, TERMINAL, timeout=240) for task_id in ids]
        assert [t["status"] for t in ended] == ["succeeded"] * 30, [t["error"] for t in ended]
        assert all(t["turns"] == 1 for t in ended)
        for task_id in ids:  # claimed once: one "running" in each task's events
            assert len(await _running_statuses(alice, task_id)) == 1
        spread = Counter(t["node"] for t in ended)
        assert set(spread) == {"n1", "n2", "n3"}, spread
        admin = Api(servers["n2"], await _token(servers["n2"], *ADMIN))
        listed = (await admin.client.get("/api/admin/nodes")).json()
        await admin.client.aclose()
        assert {n["name"]: n["alive"] for n in listed} == {"n1": True, "n2": True, "n3": True}
        await alice.client.aclose()


async def test_a_cancel_through_one_node_stops_a_turn_running_on_another(
    tmp_path: Path, database_url: str, fake_image: str, source_repo: Path
) -> None:
    with nodes(tmp_path, database_url, fake_image, ("a", "b")) as servers:
        alice, workspace_id = await _alice(servers["a"], source_repo)
        servers["a"].stop()  # only b is left to claim the turn
        on_b = _on(servers["b"], alice)
        task_id = await _submit(on_b, workspace_id, "@say working\n@sleep 60")
        assert (await on_b.until(task_id, {"running"}))["node"] == "b"
        with nodes(tmp_path, database_url, fake_image, ("a",)) as again:
            on_a = _on(again["a"], alice)
            started = time.monotonic()
            response = await on_a.client.post(f"/api/tasks/{task_id}/cancel")
            assert response.status_code == 202, response.text
            task = await on_a.until(task_id, TERMINAL, timeout=30)
            assert task["status"] == "cancelled", task
            assert time.monotonic() - started < 10
            await on_a.client.aclose()
        await on_b.client.aclose()


async def test_a_killed_node_loses_its_turn_within_the_lease_and_leaves_no_container_once_back(
    tmp_path: Path, database_url: str, fake_image: str, source_repo: Path
) -> None:
    # One slot per node: with b's taken by the doomed turn, the other turn can only run on a.
    with nodes(tmp_path, database_url, fake_image, ("a", "b"), capacity=1) as servers:
        alice, workspace_id = await _alice(servers["a"], source_repo)
        servers["a"].stop()
        on_b = _on(servers["b"], alice)
        doomed = await _submit(on_b, workspace_id, "@say working\n@sleep 60")
        assert (await on_b.until(doomed, {"running"}))["node"] == "b"
        with nodes(tmp_path, database_url, fake_image, ("a",), capacity=1) as again:
            on_a = _on(again["a"], alice)
            survivor = await _submit(on_a, workspace_id, "@sleep 2\n@write kept.txt yes")
            assert (await on_a.until(survivor, {"running"}))["node"] == "a"
            servers["b"].process.send_signal(signal.SIGKILL)
            servers["b"].process.wait()
            killed_at = time.monotonic()
            task = await on_a.until(doomed, TERMINAL, timeout=4 * LEASE_S)
            assert task["status"] == "interrupted", task
            assert "'b'" in task["error"], task["error"]
            assert time.monotonic() - killed_at <= 2 * LEASE_S + 1
            assert (await on_a.until(survivor, TERMINAL))["status"] == "succeeded"
            running = (await on_a.client.get("/api/tasks", params={"status": "running"})).json()
            assert running == []
            async with aiodocker.Docker() as docker:
                left = await docker.containers.list(all=True, filters={"label": [f"aicode.task={doomed}"]})
                assert left, "the killed node's container is still there until it comes back"
            with nodes(tmp_path, database_url, fake_image, ("b",), capacity=1):
                async with aiodocker.Docker() as docker:
                    left = await docker.containers.list(all=True, filters={"label": [f"aicode.task={doomed}"]})
                assert left == []
            await on_a.client.aclose()
        await on_b.client.aclose()


async def test_a_follow_up_through_another_node_resumes_the_session_and_any_node_serves_the_diff(
    tmp_path: Path, database_url: str, fake_image: str, source_repo: Path
) -> None:
    with nodes(tmp_path, database_url, fake_image, ("a",)) as first:
        alice, workspace_id = await _alice(first["a"], source_repo)
        task_id = await _submit(alice, workspace_id, "@write notes.txt first turn\n@say turn one")
        task = await alice.until(task_id, TERMINAL)
        assert (task["status"], task["node"]) == ("succeeded", "a"), task
        await alice.client.aclose()
    # a is gone, with its data dir's working copy: b and c carry the task on from the database.
    with nodes(tmp_path, database_url, fake_image, ("b", "c")) as servers:
        on_c = _on(servers["c"], alice)
        sent = await on_c.client.post(f"/api/tasks/{task_id}/messages",
                                      json={"prompt": "@write notes.txt second turn\n@say turn two"})
        assert sent.status_code == 202, sent.text
        task = await on_c.until(task_id, TERMINAL)
        assert task["status"] == "succeeded", task
        assert task["turns"] == 2 and task["node"] in {"b", "c"}
        events = (await on_c.client.get(f"/api/tasks/{task_id}/events")).json()
        texts = [e["data"].get("text", "") for e in events if e["type"] == "message"]
        assert any("resumed session with 1 earlier turn" in text for text in texts), texts
        # Asked of the node that did not run the follow-up: it restores the commits from the database.
        other = _on(servers["b" if task["node"] == "c" else "c"], alice)
        diff = await other.client.get(f"/api/tasks/{task_id}/diff")
        assert diff.status_code == 200, diff.text
        assert "+second turn" in diff.text and "first turn" not in diff.text.split("+second turn")[1]
        files = (await other.client.get(f"/api/tasks/{task_id}/files")).json()
        assert [f["path"] for f in files] == ["notes.txt"]
        patch = await other.client.get(f"/api/tasks/{task_id}/patch")
        assert patch.status_code == 200 and patch.text.count("\nSubject: ") == 2, patch.text[:500]
        for api in (on_c, other):
            await api.client.aclose()


async def test_a_single_server_is_a_node_listed_in_the_api_and_on_the_admin_page(client, admin_headers, settings
                                                                                 ) -> None:
    listed = (await client.get("/api/admin/nodes", headers=admin_headers)).json()
    assert [(n["name"], n["alive"], n["capacity"]) for n in listed] == [
        (settings.node_name, True, settings.max_concurrent_tasks)]
    page = await client.get("/admin/nodes", headers=admin_headers)
    assert page.status_code == 200
    assert f'data-node="{settings.node_name}"' in page.text and "(this one)" in page.text
