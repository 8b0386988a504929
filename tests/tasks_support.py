"""Helpers for task tests: submitting, waiting for the end, reading events."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from litestar.testing import AsyncTestClient

TERMINAL = {"succeeded", "failed", "cancelled", "interrupted"}


async def submit(client: AsyncTestClient, headers: dict[str, str], workspace_id: str, prompt: str,
                 **fields: Any) -> dict:
    response = await client.post(f"/api/workspaces/{workspace_id}/tasks", json={"prompt": prompt, **fields},
                                  headers=headers)
    assert response.status_code == 202, response.text
    return response.json()


async def wait_until(client: AsyncTestClient, headers: dict[str, str], task_id: str, statuses: set[str],
                     timeout: float = 60) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            task = (await client.get(f"/api/tasks/{task_id}", headers=headers)).json()
            if task["status"] in statuses:
                return task
            await asyncio.sleep(0.05)


async def finished(client: AsyncTestClient, headers: dict[str, str], task_id: str, timeout: float = 60) -> dict:
    return await wait_until(client, headers, task_id, TERMINAL, timeout)


async def submit_follow_up(client: AsyncTestClient, headers: dict[str, str], task_id: str, prompt: str,
                           timeout: float = 60) -> dict:
    """Send a follow-up and wait for its turn to end; the task as it then is."""
    response = await client.post(f"/api/tasks/{task_id}/messages", json={"prompt": prompt}, headers=headers)
    assert response.status_code == 202, response.text
    return await finished(client, headers, task_id, timeout)


async def events(client: AsyncTestClient, headers: dict[str, str], task_id: str, after: int = 0) -> list[dict]:
    response = await client.get(f"/api/tasks/{task_id}/events", params={"after": after}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def of_type(evs: list[dict], kind: str) -> list[dict]:
    return [e for e in evs if e["type"] == kind]


def mirror_path(data_dir: Path, workspace_id: str) -> Path:
    """The workspace's mirror in the server's git store, where task branches live."""
    return data_dir / "git" / "mirrors" / f"{workspace_id}.git"


def checkout_path(data_dir: Path, task_id: str) -> Path:
    """The task's working copy (the agent's, mounted at /workspace)."""
    return data_dir / "tasks" / task_id / "checkout"


def task_ref(task_id: str) -> str:
    return f"refs/aicode/tasks/{task_id}"
