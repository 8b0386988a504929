"""The event bus contract, over both channel backends (in-process and Redis): replay then live,
no gap and no duplicate, even while events are written during the replay."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from redis.asyncio import Redis

from aicode.channels import build_channels
from aicode.db.pool import Database
from aicode.tasks.events import TaskEventBus
from aicode.tasks.repo import TaskEventRepo

REDIS_URL = os.environ.get("AICODE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=["memory", "redis"])
async def bus(request: pytest.FixtureRequest, database_url: str) -> AsyncIterator[tuple[TaskEventBus, Database]]:
    database = Database(database_url)
    await database.open()
    redis = Redis.from_url(REDIS_URL) if request.param == "redis" else None
    async with build_channels(redis) as channels:
        yield TaskEventBus(database, TaskEventRepo(database), channels), database
    if redis is not None:
        await redis.aclose()
    await database.close()


async def _task(database: Database) -> uuid.UUID:
    """A task row to hang events on (with the user and workspace it needs)."""
    async with database.transaction() as conn:
        user = await conn.fetchval("INSERT INTO users (username, password_hash) VALUES ('u', 'x') RETURNING id")
        workspace = await conn.fetchval(
            "INSERT INTO workspaces (owner_id, name, repo_url, status) VALUES ($1, 'w', '/r', 'ready') RETURNING id",
            user)
        return await conn.fetchval(
            """INSERT INTO tasks (workspace_id, user_id, prompt, timeout_s, base_branch, branch, status)
               VALUES ($1, $2, 'p', 60, 'main', 'b', 'running') RETURNING id""", workspace, user)


async def _finish(database: Database, task_id: uuid.UUID) -> None:
    await database.pool.execute("UPDATE tasks SET status = 'succeeded' WHERE id = $1", task_id)


async def test_a_follower_gets_every_event_once_while_they_are_written(bus) -> None:
    events_bus, database = bus
    task_id = await _task(database)
    for index in range(300):  # history to replay
        await events_bus.emit(task_id, [("message", {"i": index})])

    async def settled(last: int) -> bool:
        row = await database.pool.fetchrow("SELECT status, last_seq FROM tasks WHERE id = $1", task_id)
        return row["status"] == "succeeded" and row["last_seq"] <= last

    async def write_more() -> None:
        for index in range(300, 600):
            await events_bus.emit(task_id, [("message", {"i": index})])
            if index % 50 == 0:
                await asyncio.sleep(0)
        await _finish(database, task_id)
        await events_bus.emit(task_id, [("task.status", {"status": "succeeded"})])

    writer = asyncio.create_task(write_more())
    seen = [event.seq async for event in events_bus.follow(task_id, 0, settled)]
    await writer
    assert seen == list(range(1, 602))


async def test_following_after_n_starts_right_after_it(bus) -> None:
    events_bus, database = bus
    task_id = await _task(database)
    await events_bus.emit(task_id, [("message", {"i": i}) for i in range(10)])
    await _finish(database, task_id)
    await events_bus.emit(task_id, [("task.status", {"status": "succeeded"})])

    async def settled(last: int) -> bool:
        return last >= 11

    assert [e.seq async for e in events_bus.follow(task_id, 7, settled)] == [8, 9, 10, 11]


async def test_two_writers_of_one_task_never_share_or_skip_a_seq(bus, database_url: str) -> None:
    events_bus, database = bus
    task_id = await _task(database)
    await asyncio.gather(*(events_bus.emit(task_id, [("notice", {"w": w, "i": i})])
                           for w in range(4) for i in range(50)))
    conn = await asyncpg.connect(database_url)
    try:
        seqs = [r["seq"] for r in await conn.fetch("SELECT seq FROM task_events WHERE task_id = $1 ORDER BY seq",
                                                   task_id)]
    finally:
        await conn.close()
    assert seqs == list(range(1, 201))


async def test_a_server_with_redis_streams_a_task_to_sse(task_settings, source_repo) -> None:
    import dataclasses

    from litestar.testing import AsyncTestClient

    from aicode.app import create_app
    from tests.conftest import ADMIN, login, wait_for_status
    from tests.tasks_support import submit

    with_redis = dataclasses.replace(task_settings, redis_url=REDIS_URL)
    async with AsyncTestClient(app=create_app(with_redis)) as client:
        admin = await login(client, *ADMIN)
        await client.put("/api/me/credentials/anthropic", json={"api_key": "sk-test-key-1"}, headers=admin)
        workspace = (await client.post("/api/workspaces", json={"name": "p", "repo_url": str(source_repo)},
                                       headers=admin)).json()
        await wait_for_status(client, admin, workspace["id"])
        task = await submit(client, admin, workspace["id"], "@say over redis\n@sleep 1\n@write r.txt x")
        seqs, kinds = [], []
        async with client.stream("GET", f"/api/tasks/{task['id']}/events",
                                 headers={**admin, "Accept": "text/event-stream"}) as response:
            async for line in response.aiter_lines():
                if line.startswith("id:"):
                    seqs.append(int(line.split(":", 1)[1]))
                elif line.startswith("event:"):
                    kinds.append(line.split(":", 1)[1].strip())
    assert seqs == list(range(1, len(seqs) + 1))
    assert "git.commit" in kinds and kinds[-1] == "task.status"
