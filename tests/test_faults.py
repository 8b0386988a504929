"""Faults, with the real services: PostgreSQL, Redis and the Docker engine restarted under a running
turn, and the server killed with SIGKILL. Each ends with nothing stuck `running`, no accepted task
lost, every event there once and in order, and the next task succeeding.

These restart the machine's shared services; they wait until each answers again before they end.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from aicode.app import server_identity
from aicode.settings import Settings
from tests.cli_support import REPO, free_port, serve_in_thread
from tests.conftest import ADMIN

# serial: restarting PostgreSQL, Redis or the Docker engine would break every other test running meanwhile.
pytestmark = [pytest.mark.timeout(300), pytest.mark.serial]

TERMINAL = {"succeeded", "failed", "cancelled", "interrupted"}
REDIS_ARGS = ["--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379", "--save", "", "--appendonly",
              "no", "--dir", "/var/lib/redis", "--logfile", "/var/log/redis/ci.log"]


# -- the services ---------------------------------------------------------------------------------


def _wait(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - a service on its way back up answers with all sorts
            pass
        assert time.monotonic() < deadline, f"{what} did not come back within {timeout} s"
        time.sleep(0.2)


def _ok(*argv: str) -> bool:
    return subprocess.run(list(argv), capture_output=True, timeout=30).returncode == 0


def restart_postgres() -> None:
    version = sorted(os.listdir("/etc/postgresql"), key=lambda v: [int(p) for p in v.split(".")])[-1]
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"], check=True,
                   capture_output=True, timeout=120)
    _wait(lambda: _ok("pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432"), 60, "PostgreSQL")


def restart_redis() -> None:
    subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", "6379", "shutdown", "nosave"], capture_output=True,
                   timeout=30)
    _wait(lambda: not _ok("redis-cli", "-h", "127.0.0.1", "-p", "6379", "ping"), 30, "Redis's stop")
    time.sleep(1.0)  # streams meet a Redis that is really gone
    os.makedirs("/var/lib/redis", exist_ok=True)
    os.makedirs("/var/log/redis", exist_ok=True)
    subprocess.run(["redis-server", *REDIS_ARGS], check=True, capture_output=True, timeout=30)
    _wait(lambda: subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", "6379", "ping"], capture_output=True,
                                 text=True, timeout=10).stdout.strip() == "PONG", 30, "Redis")


def restart_dockerd() -> None:
    found = subprocess.run(["pgrep", "-x", "dockerd"], capture_output=True, text=True).stdout.split()
    assert found, "dockerd is not running"
    pid = int(found[0])
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    os.kill(pid, signal.SIGTERM)
    _wait(lambda: not Path(f"/proc/{pid}").exists(), 90, "dockerd's stop")
    with open("/var/log/aicode-ci-dockerd.log", "ab") as log:
        # `setsid -f` forks the engine off and returns: it outlives the test, as .ci/run's does.
        subprocess.run(["setsid", "-f", *(a.decode() for a in argv)], stdin=subprocess.DEVNULL, stdout=log,
                       stderr=log, check=True, timeout=30)
    _wait(lambda: _ok("docker", "info"), 90, "dockerd")


# -- a server and a client ------------------------------------------------------------------------


@dataclass
class Stage:
    url: str
    alice: dict[str, str]
    workspace: str

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, headers=self.alice, timeout=30)

    async def submit(self, prompt: str) -> str:
        async with self.client() as http:
            answer = await http.post(f"/api/workspaces/{self.workspace}/tasks", json={"prompt": prompt})
            assert answer.status_code == 202, answer.text
            return str(answer.json()["id"])

    async def task(self, task_id: str) -> dict[str, Any] | None:
        """The task, or None while the server cannot answer (a service it needs is restarting)."""
        try:
            async with self.client() as http:
                answer = await http.get(f"/api/tasks/{task_id}")
        except httpx.HTTPError:
            return None
        return answer.json() if answer.status_code == 200 else None

    async def until(self, task_id: str, statuses: set[str], timeout: float = 90) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            task = await self.task(task_id)
            if task is not None and task["status"] in statuses:
                return task
            assert time.monotonic() < deadline, f"task {task_id} is still {task and task['status']}"
            await asyncio.sleep(0.2)

    async def events(self, task_id: str) -> list[dict[str, Any]]:
        async with self.client() as http:
            return list((await http.get(f"/api/tasks/{task_id}/events", params={"limit": 5000})).json())

    async def nothing_running(self) -> None:
        async with self.client() as http:
            for status in ("running", "queued"):
                assert (await http.get("/api/tasks", params={"status": status})).json() == []


def _prepare(url: str, repo: Path) -> Stage:
    with httpx.Client(base_url=url, timeout=30) as http:
        admin = {"Authorization": "Bearer " + http.post("/api/auth/login", json={
            "username": ADMIN[0], "password": ADMIN[1]}).json()["access_token"]}
        assert http.post("/api/admin/users", json={"username": "alice", "password": "alice-password"},
                         headers=admin).status_code == 201
        alice = {"Authorization": "Bearer " + http.post("/api/auth/login", json={
            "username": "alice", "password": "alice-password"}).json()["access_token"]}
        assert http.put("/api/me/credentials/anthropic", json={"api_key": "sk-fault-key"},
                        headers=alice).status_code == 204
        workspace = http.post("/api/workspaces", json={"name": "faults", "repo_url": str(repo)}, headers=alice).json()
        deadline = time.monotonic() + 30
        while workspace["status"] == "cloning":
            assert time.monotonic() < deadline
            time.sleep(0.05)
            workspace = http.get(f"/api/workspaces/{workspace['id']}", headers=alice).json()
        assert workspace["status"] == "ready", workspace
    return Stage(url=url, alice=alice, workspace=workspace["id"])


@pytest.fixture
def stage(task_settings: Settings, source_repo: Path) -> Iterator[Stage]:
    redis = os.environ.get("AICODE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    with serve_in_thread(dataclasses.replace(task_settings, redis_url=redis)) as server:
        yield _prepare(server.url, source_repo)


def _gapless(events: list[dict[str, Any]]) -> None:
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))


def _bursts(events: list[dict[str, Any]]) -> list[str]:
    return [e["data"]["text"].split(" at ")[0] for e in events
            if e["type"] == "message" and e["data"]["text"].startswith("burst ")]


# -- the faults -----------------------------------------------------------------------------------


async def test_postgresql_restarting_during_a_turn_loses_no_event(stage: Stage) -> None:
    task_id = await stage.submit("@burst 60 100")
    await stage.until(task_id, {"running"})
    deadline = time.monotonic() + 30
    while len(_bursts(await stage.events(task_id))) < 10:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    await asyncio.to_thread(restart_postgres)
    done = await stage.until(task_id, TERMINAL)
    assert done["status"] == "succeeded", done
    events = await stage.events(task_id)
    _gapless(events)
    assert _bursts(events) == [f"burst {i}" for i in range(60)]
    assert (await stage.until(await stage.submit("@write after.txt db"), TERMINAL))["status"] == "succeeded"
    await stage.nothing_running()


async def _stream(stage: Stage, task_id: str, received: list[dict[str, Any]]) -> None:
    """Follow the task over SSE to its end, resuming with Last-Event-ID after a drop."""
    last = 0
    while True:
        try:
            async with stage.client() as http, http.stream(
                    "GET", f"/api/tasks/{task_id}/events",
                    headers={"Accept": "text/event-stream", "Last-Event-ID": str(last)}) as answer:
                async for line in answer.aiter_lines():
                    if line.startswith("data:"):
                        event = json.loads(line[5:])
                        if "seq" not in event:
                            continue  # a live-only text delta
                        received.append(event)
                        last = event["seq"]
            return
        except httpx.HTTPError:
            await asyncio.sleep(0.5)


async def test_redis_restarting_under_open_streams_leaves_no_gap(stage: Stage) -> None:
    task_id = await stage.submit("@burst 80 100")
    await stage.until(task_id, {"running"})
    streams: list[list[dict[str, Any]]] = [[], []]
    readers = [asyncio.create_task(_stream(stage, task_id, received)) for received in streams]
    deadline = time.monotonic() + 30
    while min(len(_bursts(s)) for s in streams) < 10:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    await asyncio.to_thread(restart_redis)
    async with asyncio.timeout(90):
        await asyncio.gather(*readers)
    stored = await stage.events(task_id)
    assert stored[-1]["type"] == "task.status" and stored[-1]["data"]["status"] == "succeeded"
    for received in streams:
        _gapless(received)
        assert [e["seq"] for e in received] == [e["seq"] for e in stored]
    assert _bursts(stored) == [f"burst {i}" for i in range(80)]
    # Live fan-out works again for a new task.
    later = await stage.submit("@burst 5 50")
    fresh: list[dict[str, Any]] = []
    async with asyncio.timeout(60):
        await _stream(stage, later, fresh)
    assert fresh[-1]["data"]["status"] == "succeeded"
    await stage.nothing_running()


async def test_the_docker_engine_restarting_ends_the_turn_and_the_next_one_runs(stage: Stage) -> None:
    task_id = await stage.submit("@write started.txt yes\n@sleep 120")
    await stage.until(task_id, {"running"})
    deadline = time.monotonic() + 30
    while not any(e["type"] == "tool.result" for e in await stage.events(task_id)):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    await asyncio.to_thread(restart_dockerd)
    ended = await stage.until(task_id, TERMINAL, timeout=120)
    assert ended["status"] in ("failed", "interrupted"), ended
    assert ended["error"], ended
    _gapless(await stage.events(task_id))
    assert (await stage.until(await stage.submit("@write next.txt ok"), TERMINAL))["status"] == "succeeded"
    await stage.nothing_running()


# -- SIGKILL ----------------------------------------------------------------------------------------


@pytest.fixture
async def server_process(task_settings: Settings, tmp_path: Path) -> AsyncIterator[Any]:
    """`aicode serve` as a process of its own (so it can be killed), started again on demand."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AICODE_")}
    env.update({
        "AICODE_DATABASE_URL": str(task_settings.database_url), "AICODE_DATA_DIR": str(task_settings.data_dir),
        "AICODE_SECRET_KEY": str(task_settings.secret_key), "AICODE_PORT": str(port),
        "AICODE_BOOTSTRAP_ADMIN": ":".join(ADMIN), "AICODE_WORKSPACE_IMAGE": task_settings.workspace_image,
        "AICODE_WORKSPACE_NETWORK": "none", "AICODE_MAX_CONCURRENT_TASKS": "1", "AICODE_NODE_NAME": "kill-node",
        "AICODE_LOCAL_REPO_ROOTS": os.pathsep.join(str(r) for r in task_settings.local_repo_roots),
        "AICODE_LOG_FORMAT": "json"})
    processes: list[subprocess.Popen[bytes]] = []
    logs: list[Any] = []

    def start() -> str:
        log = (tmp_path / f"server-{len(processes)}.log").open("wb")
        logs.append(log)
        processes.append(subprocess.Popen([sys.executable, "-m", "aicode", "serve"], cwd=REPO, env=env,
                                          stdout=log, stderr=log, stdin=subprocess.DEVNULL))
        url = f"http://127.0.0.1:{port}"
        _wait(lambda: httpx.get(f"{url}/healthz", timeout=2).status_code == 200, 60, "aicode serve")
        return url

    try:
        yield start, processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=30)
        for log in logs:
            log.close()


async def test_a_server_killed_during_a_turn_starts_again_with_nothing_lost(
        server_process: Any, source_repo: Path, task_settings: Settings) -> None:
    start, processes = server_process
    url = await asyncio.to_thread(start)
    stage = await asyncio.to_thread(_prepare, url, source_repo)
    running = await stage.submit("@write partial.txt written before the kill\n@sleep 120")
    await stage.until(running, {"running"})
    deadline = time.monotonic() + 30
    while not any(e["type"] == "tool.result" for e in await stage.events(running)):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    waiting = await stage.submit("@write queued.txt accepted before the kill")
    assert (await stage.task(waiting))["status"] == "queued"  # type: ignore[index]
    processes[-1].send_signal(signal.SIGKILL)
    processes[-1].wait(timeout=30)

    await asyncio.to_thread(start)
    cut = await stage.until(running, TERMINAL)
    assert cut["status"] == "interrupted" and "partial" in cut["error"], cut
    async with stage.client() as http:
        diff = await http.get(f"/api/tasks/{running}/diff")
    assert "written before the kill" in diff.text
    assert (await stage.until(waiting, TERMINAL))["status"] == "succeeded"
    assert (await stage.until(await stage.submit("@write after.txt ok"), TERMINAL))["status"] == "succeeded"
    await stage.nothing_running()
    _gapless(await stage.events(running))
    # The killed turn's container was found and removed when the server started again.
    ours = f"label=aicode.server={server_identity(task_settings.data_dir)}"
    left = subprocess.run(["docker", "ps", "-aq", "--filter", ours, "--filter", f"label=aicode.task={running}"],
                          capture_output=True, text=True, check=True).stdout.split()
    assert left == [], "the killed server's turn left its container behind"
