"""The container a task runs in: hardened as the spec says, labelled, and gone when the turn ends."""

from __future__ import annotations

import asyncio
import os

import aiodocker
import pytest

from tests.tasks_support import finished, submit, wait_until

pytestmark = pytest.mark.timeout(120)


async def _task_container(docker: aiodocker.Docker, task_id: str) -> dict:
    async with asyncio.timeout(20):
        while True:
            found = await docker.containers.list(filters={"label": [f"aicode.task={task_id}"]})
            if found:
                return await found[0].show()
            await asyncio.sleep(0.05)


async def test_the_task_container_is_hardened_and_labelled(task_app, workspace) -> None:
    ws, alice = workspace
    await task_app.patch(f"/api/workspaces/{ws['id']}", json={"limits": {"memory_mb": 512, "cpus": 1, "pids": 128}},
                         headers=alice)
    task = await submit(task_app, alice, ws["id"], "@whoami\n@sleep 3")
    async with aiodocker.Docker() as docker:
        info = await _task_container(docker, task["id"])
    host = info["HostConfig"]
    assert host["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["ReadonlyRootfs"] is True and host["Privileged"] is False
    assert "/tmp" in host["Tmpfs"]
    assert host["Memory"] == 512 * 1024 * 1024 and host["NanoCpus"] == 1_000_000_000 and host["PidsLimit"] == 128
    assert host["NetworkMode"] == "none"
    # Not the image's user: the agent uid (10000 when the server is root, else the server's own).
    assert info["Config"]["User"] == ("10000:10000" if os.geteuid() == 0 else f"{os.getuid()}:{os.getgid()}")
    assert not any("docker.sock" in bind for bind in host["Binds"])
    assert any(bind.endswith(":/workspace:rw") for bind in host["Binds"])
    labels = info["Config"]["Labels"]
    assert labels["aicode.task"] == task["id"] and labels["aicode.workspace"] == ws["id"]
    assert labels["aicode.server"]
    assert not any("sk-test-alice-key" in entry for entry in info["Config"]["Env"])
    await task_app.post(f"/api/tasks/{task['id']}/cancel", headers=alice)
    await finished(task_app, alice, task["id"])


async def test_the_container_is_removed_when_the_turn_ends_whatever_the_outcome(task_app, workspace) -> None:
    ws, alice = workspace
    outcomes = ["@say ok", "@exit 2", "@sleep 30"]
    tasks = [await submit(task_app, alice, ws["id"], prompt) for prompt in outcomes]
    await wait_until(task_app, alice, tasks[2]["id"], {"running"})
    await task_app.post(f"/api/tasks/{tasks[2]['id']}/cancel", headers=alice)
    for task in tasks:
        await finished(task_app, alice, task["id"])
    async with aiodocker.Docker() as docker, asyncio.timeout(20):
        while True:
            left = [c for task in tasks
                    for c in await docker.containers.list(all=True, filters={"label": [f"aicode.task={task['id']}"]})]
            if not left:
                break
            await asyncio.sleep(0.1)


async def test_a_reader_that_never_reads_slows_neither_the_task_nor_other_readers(task_app, workspace) -> None:
    ws, alice = workspace
    task = await submit(task_app, alice, ws["id"], "@sleep 1\n@burst 3000")
    stalled = await task_app.websocket_connect(f"/ws/tasks/{task['id']}", headers=alice)
    try:
        received = []
        with await task_app.websocket_connect(f"/ws/tasks/{task['id']}", headers=alice) as reader:
            while True:
                event = reader.receive_json(timeout=60)
                if "seq" not in event:
                    continue  # a live-only text delta
                received.append(event["seq"])
                if event["type"] == "task.status" and event["data"]["status"] == "succeeded":
                    break
        done = await finished(task_app, alice, task["id"], timeout=60)
    finally:
        stalled.close()
    assert done["status"] == "succeeded"
    assert received == list(range(1, len(received) + 1))
    assert len(received) > 3000
