"""A real aicode server for benchmarks: its own database, data dir, admin token and a ready workspace.

The server runs as `python -m aicode serve` in a subprocess, exactly as an operator runs it; the
benchmark talks to it over HTTP and WebSocket on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiodocker
import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.images import ensure_fake_image  # noqa: E402

ADMIN_URL = os.environ.get("AICODE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
BASE_IMAGE = os.environ.get("AICODE_TEST_IMAGE", "aicode-workspace:test")


@dataclass
class BenchServer:
    url: str
    headers: dict[str, str]
    workspace_id: str
    data_dir: Path
    http: httpx.AsyncClient

    async def submit(self, prompt: str, **fields: object) -> dict:
        response = await self.http.post(f"/api/workspaces/{self.workspace_id}/tasks",
                                        json={"prompt": prompt, **fields})
        response.raise_for_status()
        return response.json()

    async def wait_finished(self, task_id: str, timeout: float = 300) -> dict:
        async with asyncio.timeout(timeout):
            while True:
                task = (await self.http.get(f"/api/tasks/{task_id}")).json()
                if task["status"] in {"succeeded", "failed", "cancelled", "interrupted"}:
                    return task
                await asyncio.sleep(0.02)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[int(pct) - 1]


def make_repo(path: Path, files: int = 3) -> Path:
    path.mkdir(parents=True)
    env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "bench",
           "GIT_COMMITTER_EMAIL": "b@x"}
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=path, check=True)
    for index in range(files):
        (path / f"file_{index}.txt").write_text(f"line {index}\n" * 20)
    subprocess.run(["git", "add", "."], cwd=path, check=True, env=env)
    subprocess.run(["git", "commit", "-q", "-m", "init"], cwd=path, check=True, env=env)
    return path


async def fake_image() -> str:
    async with aiodocker.Docker() as docker:
        return await ensure_fake_image(docker, base=BASE_IMAGE)


@asynccontextmanager
async def bench_server(image: str, *, max_concurrent: int = 2, network: str = "none",
                       extra_env: dict[str, str] | None = None, repo_files: int = 3) -> AsyncIterator[BenchServer]:
    name = f"aicode_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    tmp = Path(tempfile.mkdtemp(prefix="aicode-bench-"))
    repo = make_repo(tmp / "repos" / "project", repo_files)
    port = free_port()
    env = {
        **os.environ,
        "AICODE_DATABASE_URL": urlunsplit(urlsplit(ADMIN_URL)._replace(path=f"/{name}")),
        "AICODE_DATA_DIR": str(tmp / "data"), "AICODE_PORT": str(port), "AICODE_HOST": "127.0.0.1",
        "AICODE_BOOTSTRAP_ADMIN": "bench:bench-password", "AICODE_LOCAL_REPO_ROOTS": str(tmp / "repos"),
        "AICODE_WORKSPACE_IMAGE": image, "AICODE_WORKSPACE_NETWORK": network,
        "AICODE_MAX_CONCURRENT_TASKS": str(max_concurrent), "AICODE_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "warning"),
        **(extra_env or {}),
    }
    log = open(os.environ["BENCH_SERVER_LOG"], "w") if os.environ.get("BENCH_SERVER_LOG") else subprocess.DEVNULL
    server = subprocess.Popen([sys.executable, "-m", "aicode", "serve"], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            await _wait_healthy(http)
            login = await http.post("/api/auth/login", json={"username": "bench", "password": "bench-password"})
            http.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
            for provider in ("anthropic", "openai", "gemini"):
                await http.put(f"/api/me/credentials/{provider}", json={"api_key": "sk-bench-key"})
            workspace = (await http.post("/api/workspaces", json={"name": "bench", "repo_url": str(repo)})).json()
            while (await http.get(f"/api/workspaces/{workspace['id']}")).json()["status"] == "cloning":
                await asyncio.sleep(0.05)
            yield BenchServer(url, dict(http.headers), workspace["id"], tmp / "data", http)
    finally:
        server.terminate()
        server.wait(30)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        subprocess.run(["rm", "-rf", str(tmp)], check=False)


async def _wait_healthy(http: httpx.AsyncClient, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if (await http.get("/healthz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("the benchmark server did not start")
