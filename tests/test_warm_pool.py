"""Warm start: a first turn takes a ready, hardened container from the pool; each is given to one task only,
and another is made in its place."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import AsyncIterator

import aiodocker
import pytest
from litestar.testing import AsyncTestClient

from aicode.app import create_app
from aicode.settings import Settings
from tests.conftest import ADMIN, login, make_user, wait_for_status
from tests.tasks_support import events, finished, of_type, submit

pytestmark = pytest.mark.timeout(180)


async def _warm(docker: aiodocker.Docker, data_dir: object) -> list[dict]:
    """This server's warm containers: made ahead for a task id, named ...-warm, not yet taken."""
    containers = await docker.containers.list(all=True)
    return [c._container for c in containers if any(name.endswith("-warm") for name in c._container["Names"])
            and str(data_dir) in str(c._container.get("Mounts", "")) and c._container.get("State") == "running"]


async def _ready(docker: aiodocker.Docker, settings: Settings, *, besides: tuple[str, ...] = ()) -> list[str]:
    """The warm containers once there is one and those `besides` (taken, being removed) are gone."""
    async with asyncio.timeout(60):
        while True:
            found = [c["Id"] for c in await _warm(docker, settings.data_dir)]
            if found and not set(found) & set(besides):
                await asyncio.sleep(0.3)  # running now; in the pool's list a moment later
                return found
            await asyncio.sleep(0.1)


async def _hostname(client: AsyncTestClient, headers: dict[str, str], task_id: str) -> str:
    output = "\n".join(r["data"]["output"] for r in of_type(await events(client, headers, task_id), "tool.result"))
    return re.search(r"host=(\w+)", output).group(1)


@pytest.fixture
async def pooled(task_settings: Settings) -> AsyncIterator[tuple[AsyncTestClient, Settings]]:
    settings = dataclasses.replace(task_settings, warm_pool=1)
    async with AsyncTestClient(app=create_app(settings)) as client:
        yield client, settings


async def _alice(client: AsyncTestClient, source_repo: object) -> tuple[str, dict[str, str]]:
    admin = await login(client, *ADMIN)
    alice = await make_user(client, admin, "alice")
    await client.put("/api/me/credentials/anthropic", json={"api_key": "sk-test-alice-key"}, headers=alice)
    created = await client.post("/api/workspaces", json={"name": "proj", "repo_url": str(source_repo)}, headers=alice)
    assert (await wait_for_status(client, alice, created.json()["id"]))["status"] == "ready"
    return created.json()["id"], alice


async def test_a_first_turn_takes_the_container_made_for_it_and_each_serves_one_task_only(pooled,
                                                                                         source_repo) -> None:
    client, settings = pooled
    workspace, alice = await _alice(client, source_repo)
    async with aiodocker.Docker() as docker:
        assert await _warm(docker, settings.data_dir) == []
        cold = await finished(client, alice, (await submit(client, alice, workspace, "@say cold start"))["id"])
        assert cold["status"] == "succeeded"
        # Using the workspace made a container ready for its next task: labelled and named for that task.
        [first_warm] = await _ready(docker, settings)
        labels = (await docker.containers.container(first_warm).show())["Config"]["Labels"]
        assert labels["aicode.workspace"] == workspace
        one = await submit(client, alice, workspace, "@write a.txt a\n@bash echo host=$(hostname)")
        assert one["id"] == labels["aicode.task"]  # the task took the id its container was made for
        one = await finished(client, alice, one["id"])
        assert one["status"] == "succeeded", one
        assert first_warm.startswith(await _hostname(client, alice, one["id"]))
        # The taken container is not in the pool any more; a new one took its place, for another task id.
        [second_warm] = await _ready(docker, settings, besides=(first_warm,))
        assert second_warm != first_warm
        two = await finished(client, alice, (await submit(client, alice, workspace,
                                                          "@bash echo host=$(hostname)"))["id"])
        assert second_warm.startswith(await _hostname(client, alice, two["id"]))
        files_one = {f["path"] for f in (await client.get(f"/api/tasks/{one['id']}/files", headers=alice)).json()}
        files_two = {f["path"] for f in (await client.get(f"/api/tasks/{two['id']}/files", headers=alice)).json()}
        assert files_one == {"a.txt"} and files_two == set()
        # A follow-up never takes a warm container: it is made for a new task's first turn.
        waiting = await _ready(docker, settings, besides=(second_warm,))
        await client.post(f"/api/tasks/{one['id']}/messages", json={"prompt": "@bash echo host=$(hostname)"},
                          headers=alice)
        assert (await finished(client, alice, one["id"]))["status"] == "succeeded"
        assert [c["Id"] for c in await _warm(docker, settings.data_dir)] == waiting


async def test_two_tasks_at_once_never_share_a_container(pooled, source_repo) -> None:
    client, settings = pooled
    workspace, alice = await _alice(client, source_repo)
    async with aiodocker.Docker() as docker:
        await finished(client, alice, (await submit(client, alice, workspace, "@say cold start"))["id"])
        await _ready(docker, settings)
        tasks = [await submit(client, alice, workspace, "@bash echo host=$(hostname)\n@sleep 1") for _ in range(2)]
        done = [await finished(client, alice, task["id"]) for task in tasks]
        assert all(task["status"] == "succeeded" for task in done), done
        hosts = {await _hostname(client, alice, task["id"]) for task in tasks}
        assert len(hosts) == 2


async def test_the_pool_is_off_at_zero_and_emptied_at_shutdown(task_settings: Settings, source_repo) -> None:
    async with aiodocker.Docker() as docker:
        settings = dataclasses.replace(task_settings, warm_pool=0)
        async with AsyncTestClient(app=create_app(settings)) as client:
            workspace, alice = await _alice(client, source_repo)
            for _ in range(2):
                task = await finished(client, alice, (await submit(client, alice, workspace, "@say hi"))["id"])
                assert task["status"] == "succeeded"
            assert await _warm(docker, settings.data_dir) == []
        # Started again with the pool on, the server makes one for the latest task's workspace at once,
        # and removes it when it stops.
        pooled_settings = dataclasses.replace(settings, warm_pool=1)
        async with AsyncTestClient(app=create_app(pooled_settings)):
            await _ready(docker, pooled_settings)
        assert await _warm(docker, pooled_settings.data_dir) == []
