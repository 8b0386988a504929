"""Benchmark: several nodes sharing one PostgreSQL queue (fake agent).

    python benchmarks/nodes.py [--tasks 200] [--lease 6]
    python benchmarks/nodes.py --tasks 60 --work 3     # throughput only, turns of 3 s agent work

Prints: claim latency on an idle node (submit → `running`, from the events' database timestamps)
p50/p99; N tasks through 1 node and through 3 nodes (throughput ratio, CPU seconds per node);
failover time after kill -9 (turn marked `interrupted`, against the lease); database transactions
and statements per turn (from pg_stat_database / pg_stat_statements when loaded).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
from harness import ADMIN_URL, _wait_healthy, fake_image, free_port, make_repo, percentile

TERMINAL = {"succeeded", "failed", "cancelled", "interrupted"}
SECRET = "benchmark-nodes-share-this-secret-key"


class Node:
    def __init__(self, name: str, process: subprocess.Popen[bytes], url: str) -> None:
        self.name, self.process, self.url = name, process, url

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.process.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Cluster:
    def __init__(self, database: str, tmp: Path, image: str, lease_s: int) -> None:
        self.database, self.tmp, self.image, self.lease_s = database, tmp, image, lease_s
        self.nodes: dict[str, Node] = {}
        self.http: httpx.AsyncClient | None = None
        self.workspace_id = ""

    async def start(self, name: str) -> Node:
        port = free_port()
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("AICODE_")},
               "AICODE_DATABASE_URL": self.database, "AICODE_DATA_DIR": str(self.tmp / name),
               "AICODE_PORT": str(port), "AICODE_NODE_NAME": name, "AICODE_NODE_LEASE_S": str(self.lease_s),
               "AICODE_SECRET_KEY": SECRET, "AICODE_BOOTSTRAP_ADMIN": "bench:bench-password",
               "AICODE_LOCAL_REPO_ROOTS": str(self.tmp / "repos"), "AICODE_WORKSPACE_IMAGE": self.image,
               "AICODE_WORKSPACE_NETWORK": "none", "AICODE_MAX_CONCURRENT_TASKS": "2",
               "AICODE_REDIS_URL": os.environ.get("AICODE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
               "AICODE_MAX_QUEUED_PER_USER": "1000", "AICODE_LOG_LEVEL": "warning"}
        process = subprocess.Popen([sys.executable, "-m", "aicode", "serve"], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        node = Node(name, process, f"http://127.0.0.1:{port}")
        async with httpx.AsyncClient(base_url=node.url) as http:
            await _wait_healthy(http)
        self.nodes[name] = node
        return node

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        node = self.nodes.pop(name)
        node.process.send_signal(sig)
        node.process.wait(60)

    async def connect(self, via: Node) -> httpx.AsyncClient:
        http = httpx.AsyncClient(base_url=via.url, timeout=60)
        login = await http.post("/api/auth/login", json={"username": "bench", "password": "bench-password"})
        http.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        if not self.workspace_id:
            await http.put("/api/me/credentials/anthropic", json={"api_key": "sk-bench-key"})
            repo = make_repo(self.tmp / "repos" / "project")
            made = (await http.post("/api/workspaces", json={"name": "bench", "repo_url": str(repo)})).json()
            while (await http.get(f"/api/workspaces/{made['id']}")).json()["status"] == "cloning":
                await asyncio.sleep(0.05)
            self.workspace_id = made["id"]
        self.http = http
        return http

    async def submit(self, prompt: str) -> str:
        assert self.http is not None
        response = await self.http.post(f"/api/workspaces/{self.workspace_id}/tasks", json={"prompt": prompt})
        response.raise_for_status()
        return response.json()["id"]

    async def wait(self, task_id: str, statuses: set[str] = TERMINAL, timeout: float = 900) -> dict:
        assert self.http is not None
        async with asyncio.timeout(timeout):
            while (task := (await self.http.get(f"/api/tasks/{task_id}")).json())["status"] not in statuses:
                await asyncio.sleep(0.05)
        return task

    async def claim_latency_s(self, task_id: str) -> float:
        assert self.http is not None
        events = (await self.http.get(f"/api/tasks/{task_id}/events")).json()
        stamps = {e["data"]["status"]: datetime.fromisoformat(e["ts"]) for e in events if e["type"] == "task.status"}
        return (stamps["running"] - stamps["queued"]).total_seconds()


@asynccontextmanager
async def cluster(image: str, lease_s: int) -> AsyncIterator[Cluster]:
    name = f"aicode_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    tmp = Path(tempfile.mkdtemp(prefix="aicode-bench-nodes-"))
    made = Cluster(urlunsplit(urlsplit(ADMIN_URL)._replace(path=f"/{name}")), tmp, image, lease_s)
    try:
        yield made
    finally:
        if made.http is not None:
            await made.http.aclose()
        for node in list(made.nodes):
            made.stop(node)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        subprocess.run(["rm", "-rf", str(tmp)], check=False)


async def _database_counters(database: str) -> tuple[int, int | None]:
    conn = await asyncpg.connect(database)
    try:
        xacts = await conn.fetchval("SELECT xact_commit + xact_rollback FROM pg_stat_database "
                                    "WHERE datname = current_database()")
        statements = None
        if await conn.fetchval("SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'"):
            statements = await conn.fetchval("SELECT sum(calls) FROM pg_stat_statements s JOIN pg_database d "
                                             "ON d.oid = s.dbid WHERE d.datname = current_database()")
        return int(xacts), None if statements is None else int(statements)
    finally:
        await conn.close()


async def _all_ended(made: Cluster, count: int) -> int:
    """Wait (one listing every 0.25 s) until `count` tasks have ended; returns how many listings it took."""
    assert made.http is not None
    polls = 0
    while True:
        polls += 1
        listed = (await made.http.get("/api/tasks", params={"limit": 500})).json()
        if sum(task["status"] in TERMINAL for task in listed) >= count:
            return polls
        await asyncio.sleep(0.25)


async def _background_transactions(made: Cluster) -> tuple[float, float]:
    """The database transactions an idle cluster makes per second (heartbeats), and per task listing."""
    before, _ = await _database_counters(made.database)
    await asyncio.sleep(5)
    middle, _ = await _database_counters(made.database)
    assert made.http is not None
    for _ in range(20):
        await made.http.get("/api/tasks", params={"limit": 500})
    after, _ = await _database_counters(made.database)
    idle_per_s = (middle - before) / 5
    return idle_per_s, max(0.0, (after - middle - idle_per_s * 0.1) / 20)


async def throughput(image: str, count: int, nodes: int, lease_s: int, prompt: str = "@say hi"
                     ) -> tuple[float, dict[str, float], float]:
    """Tasks per second through `nodes` nodes, each node's CPU seconds, and database transactions per
    turn (submit to end; the cluster's idle heartbeats and this benchmark's own listings taken out)."""
    async with cluster(image, lease_s) as made:
        started_nodes = [await made.start(f"n{i + 1}") for i in range(nodes)]
        await made.connect(started_nodes[0])
        idle_per_s, per_listing = await _background_transactions(made)
        cpu_before = {n.name: n.cpu_seconds() for n in started_nodes}
        xacts_before, _ = await _database_counters(made.database)
        started = time.perf_counter()
        for _ in range(count):
            await made.submit(prompt)
        polls = await _all_ended(made, count)
        elapsed = time.perf_counter() - started
        xacts_after, _ = await _database_counters(made.database)
        cpu = {n.name: round(n.cpu_seconds() - cpu_before[n.name], 1) for n in started_nodes}
        turn_xacts = (xacts_after - xacts_before - idle_per_s * elapsed - polls * per_listing) / count
        return count / elapsed, cpu, turn_xacts


async def claim_and_failover(image: str, lease_s: int) -> None:
    async with cluster(image, lease_s) as made:
        await made.start("a")
        await made.connect(made.nodes["a"])
        latencies = []
        for _ in range(40):
            task_id = await made.submit("@say hi")
            await made.wait(task_id)
            latencies.append(await made.claim_latency_s(task_id))
        print(f"claim latency on an idle node over {len(latencies)} tasks: p50 {percentile(latencies, 50) * 1000:.1f} ms, "
              f"p99 {percentile(latencies, 99) * 1000:.1f} ms")
        await made.start("b")
        made.stop("a")
        await made.connect(made.nodes["b"])
        doomed = await made.submit("@sleep 120")
        await made.wait(doomed, {"running"})
        await made.start("a")
        await made.connect(made.nodes["a"])
        killed = time.perf_counter()
        made.stop("b", signal.SIGKILL)
        task = await made.wait(doomed, timeout=10 * lease_s)
        took = time.perf_counter() - killed
        print(f"failover after kill -9: turn {task['status']} {took:.1f} s after the kill "
              f"(lease {lease_s} s: {took / lease_s:.2f} x lease)")


async def main(count: int, lease_s: int, work_s: float) -> None:
    image = await fake_image()
    if work_s:
        # Turns where the agent works `work_s` seconds: the nodes' slots, not this machine's Docker
        # engine, bound the throughput.
        prompt = f"@sleep {work_s}"
        one, cpu_one, _ = await throughput(image, count, 1, lease_s, prompt)
        three, cpu_three, _ = await throughput(image, count, 3, lease_s, prompt)
        print(f"{count} tasks of {work_s} s agent work through 1 node: {one:.2f} tasks/s (CPU s {cpu_one}); "
              f"through 3 nodes: {three:.2f} tasks/s (CPU s {cpu_three}); ratio {three / one:.2f}")
        return
    await claim_and_failover(image, lease_s)
    one, cpu_one, xacts = await throughput(image, count, 1, lease_s)
    three, cpu_three, xacts_three = await throughput(image, count, 3, lease_s)
    print(f"{count} tasks through 1 node: {one:.2f} tasks/s (CPU s {cpu_one}); through 3 nodes: {three:.2f} tasks/s "
          f"(CPU s {cpu_three}); ratio {three / one:.2f}")
    print(f"database transactions per task turn, submit to end: {xacts:.1f} with 1 node, {xacts_three:.1f} with 3")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--lease", type=int, default=6)
    parser.add_argument("--work", type=float, default=0.0,
                        help="seconds of agent work per task: measure only throughput, 1 vs 3 nodes")
    args = parser.parse_args()
    asyncio.run(main(args.tasks, args.lease, args.work))
