"""Benchmark: what the model gateway adds to a streaming model call, and whether its memory stays flat.

    python benchmarks/gateway.py [--calls 200] [--backend memory|server]

Streaming `POST /v1/messages` calls go to the scripted mock Messages API, alternately straight and
through a GatewayListener (the shipped price table), all in this process on 127.0.0.1. With
`--backend server` the gateway runs on the server's own backend over a scratch PostgreSQL database
(token lookup, the budget check before each call, the usage row after it), as in production; the
default `memory` backend measures the proxying alone. Time to first byte is measured to the first body chunk; total time to the end of the
stream. The process's resident memory (VmRSS) is read after 20 and after all calls through the
gateway: the gateway holds nothing per finished call, so the two should be about the same (the mock's
record of requests is cleared as it goes; the in-memory backend keeps its usage records, ~100 B each).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
from harness import ADMIN_URL, percentile

from aicode.background import BackgroundTasks
from aicode.db.migrations import apply_migrations
from aicode.db.pool import Database
from aicode.gateway.backend import ServerGatewayBackend
from aicode.gateway.grants import GrantStore
from aicode.gateway.listener import GatewayListener
from aicode.gateway.models import GatewayBackend, ModelCredential
from aicode.gateway.prices import PriceTable
from aicode.gateway.repo import GrantRepo, UsageRepo
from tests.fakes.mock_anthropic import MockAnthropic, reply
from tests.test_gateway import TOKEN, InMemoryGatewayBackend

PROMPT = {"model": "claude-sonnet-4-5", "max_tokens": 1024, "stream": True,
          "messages": [{"role": "user", "content": "Write a paragraph. " * 50}]}
ANSWER = reply("All work and no play makes Jack a dull boy. " * 100)  # ~4.5 KB of text, ~10 events


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def timed_call(http: httpx.AsyncClient, headers: dict[str, str]) -> tuple[float, float]:
    """Seconds to the first streamed byte and to the end of the stream."""
    started = time.perf_counter()
    first = 0.0
    async with http.stream("POST", "/v1/messages", json=PROMPT, headers=headers) as response:
        response.raise_for_status()
        async for _ in response.aiter_raw():
            first = first or time.perf_counter() - started
    return first, time.perf_counter() - started


def summary(name: str, values: list[float]) -> str:
    return f"p50 {percentile(values, 50) * 1000:6.2f} ms  p99 {percentile(values, 99) * 1000:6.2f} ms  ({name})"


@asynccontextmanager
async def memory_backend() -> AsyncIterator[tuple[GatewayBackend, str]]:
    backend = InMemoryGatewayBackend()
    backend.add_grant(TOKEN)
    yield backend, TOKEN


@asynccontextmanager
async def server_backend() -> AsyncIterator[tuple[GatewayBackend, str]]:
    """The server's backend on a scratch database with one user, workspace and running task."""
    name = f"aicode_bench_gw_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    database = Database(urlunsplit(urlsplit(ADMIN_URL)._replace(path=f"/{name}")))
    background = BackgroundTasks()
    try:
        await database.open()
        async with database.pool.acquire() as conn:
            await apply_migrations(conn)
            user = await conn.fetchval("INSERT INTO users (username, password_hash) VALUES ('bench', 'x') RETURNING id")
            workspace = await conn.fetchval(
                "INSERT INTO workspaces (owner_id, name, repo_url) VALUES ($1, 'bench', '/x') RETURNING id", user)
            task = await conn.fetchval(
                """INSERT INTO tasks (workspace_id, user_id, prompt, timeout_s, base_branch, branch, status)
                   VALUES ($1, $2, 'x', 60, 'main', 'aicode/x', 'running') RETURNING id""", workspace, user)
        grants = GrantStore(GrantRepo(database))
        token, _ = await grants.issue(task_id=task, user_id=user, workspace_id=workspace,
                                      credentials={"anthropic": ModelCredential("api_key", "sk-bench")},
                                      egress_allow=())

        async def notify(*_: object) -> None:
            return None

        yield ServerGatewayBackend(grants, UsageRepo(database), background, notify), token
    finally:
        await background.close()
        await database.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def main(calls: int, backend_kind: str) -> None:
    async with (server_backend() if backend_kind == "server" else memory_backend()) as (backend, token):
        await measure(calls, backend, token)


async def measure(calls: int, backend: GatewayBackend, token: str) -> None:
    async with MockAnthropic(default=ANSWER) as mock:
        listener = GatewayListener(backend, PriceTable.load(), upstream=mock.url)
        await listener.start("127.0.0.1")
        try:
            async with httpx.AsyncClient(base_url=mock.url, timeout=60) as direct, \
                    httpx.AsyncClient(base_url=f"http://127.0.0.1:{listener.http_port}", timeout=60) as gateway:
                results: dict[str, list[tuple[float, float]]] = {"direct": [], "gateway": []}
                rss_after_20 = 0.0
                for index in range(calls):
                    # Alternate which goes first, so neither always meets a warmer loop.
                    order = [("direct", direct, {"x-api-key": "sk-direct"}), ("gateway", gateway, {"x-api-key": token})]
                    for name, http, headers in order if index % 2 == 0 else reversed(order):
                        results[name].append(await timed_call(http, headers))
                    # The mock keeps every request it saw: dropped, so the figure is the gateway's own.
                    mock.requests.clear()
                    mock.request_headers.clear()
                    if index + 1 == 20:
                        rss_after_20 = rss_mb()
                rss_after_all = rss_mb()
        finally:
            await listener.stop()
    report(results, rss_after_20, rss_after_all, calls)


def report(results: dict[str, list[tuple[float, float]]], rss_after_20: float, rss_after_all: float,
           calls: int) -> None:
    print(f"{calls} streaming /v1/messages calls each, straight to the mock and through the gateway")
    for label, column in (("time to first byte", 0), ("total time", 1)):
        direct = [r[column] for r in results["direct"]]
        gateway = [r[column] for r in results["gateway"]]
        print(f"{label}:")
        print("  direct  " + summary("mock", direct))
        print("  gateway " + summary("through the gateway", gateway))
        print(f"  added   p50 {(percentile(gateway, 50) - percentile(direct, 50)) * 1000:+.2f} ms, "
              f"p99 {(percentile(gateway, 99) - percentile(direct, 99)) * 1000:+.2f} ms")
    print(f"process RSS: {rss_after_20:.1f} MB after 20 calls, {rss_after_all:.1f} MB after {calls} "
          f"({rss_after_all - rss_after_20:+.1f} MB)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--backend", choices=("memory", "server"), default="memory")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.calls, arguments.backend))
