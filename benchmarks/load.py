"""Benchmark: fan-out under load. K tasks each stream ~200 events/s for D s while C SSE clients (spread
evenly over the tasks) follow `/api/tasks/{id}/events`; scenarios 5 tasks + 25 clients and 20 + 100.

    python3 benchmarks/load.py [--duration 30] [--redis] [--rate 200] [--profile DIR]
    python3 benchmarks/load.py --duration 120          # the full figure

Each scenario gets a server of its own (`python -m aicode serve` in a subprocess, a fresh database,
AICODE_MAX_CONCURRENT_TASKS=K), so its CPU seconds and peak RSS are the server's alone. The fake agent
runs `@burst N MS`: N text blocks "burst I at T", T the wall-clock time it printed it (host and
containers share the clock). Per scenario it prints:

  persisted/s   events stored, from the database: count / (last ts - first ts) over the run's tasks
  offered/s     what the agents printed per second (burst events / print span), for comparison
  persist lag   p50/p99 of (database ts - print time) per burst event: agent -> transaction
  delivered/s   events received by all clients / (last receive - first receive)
  latency       p50/p99 of (client receive time - print time) per burst event per client
  lost          events a client should have had (seq 1..the task's last_seq) but did not
  dup/gap       seqs seen twice or out of order (each should be 0)
  errors        HTTP errors, disconnects (a stream ending before the task's last event), failed tasks
  server CPU s  the server process's user+system CPU over the run (its children included)
  peak RSS      the server process's RSS, sampled every 0.25 s during the run (its start-up peak, from
                migrations and imports, is left out); RSS/task = (peak - idle RSS before the run) / K
  client CPU s  this process's CPU (the 100 SSE readers): near the wall time means the readers
                themselves saturate and the latency includes their queueing
  wall s        submit -> every task ended and every stream closed
  host CPU %    the whole machine's CPU busy over the run (100 = every core); near 100 means the
                server, the readers, PostgreSQL, dockerd and the agents compete for the cores

then the 20-vs-5 ratio of each figure. With --profile DIR the server is sampled by py-spy
(--nonblocking) for the whole run; collapsed stacks go to DIR and the top frames are printed.
Ctrl-C (or SIGTERM) stops the server, removes its containers and drops the database.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
from harness import ADMIN_URL, _wait_healthy, fake_image, free_port, make_repo, percentile

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from aicode.app import server_identity  # noqa: E402

try:
    import psutil
except ImportError:  # pragma: no cover - /proc fallback below
    psutil = None

TERMINAL = {"succeeded", "failed", "cancelled", "interrupted"}
SCENARIOS = [(5, 25), (20, 100)]
STAMP = re.compile(rb"burst \d+ at ([0-9.]+)")
REDIS_URL = os.environ.get("AICODE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
INTERVAL_MS = 5

# Synchronous undo steps for whatever is alive, run in reverse on any exit (Ctrl-C included).
_cleanups: dict[str, Callable[[], None]] = {}


def _run_cleanups() -> None:
    for key in reversed(list(_cleanups)):
        step = _cleanups.pop(key)
        try:
            print(f"cleanup: {key}", file=sys.stderr)
            step()
        except Exception as exc:  # keep undoing the rest
            print(f"cleanup {key}: {exc}", file=sys.stderr)


# -- the server process -----------------------------------------------------------------------------


class ServerProcess:
    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self.pid = process.pid

    def _pids(self) -> list[int]:
        if psutil is None:
            return [self.pid]
        with contextlib.suppress(psutil.Error):
            parent = psutil.Process(self.pid)
            return [self.pid, *(c.pid for c in parent.children(recursive=True))]
        return [self.pid]

    def cpu_seconds(self) -> float:
        """User + system CPU of the server and its live children (git etc.)."""
        total = 0.0
        for pid in self._pids():
            with contextlib.suppress(OSError, ValueError):
                with open(f"/proc/{pid}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
                # utime, stime, cutime, cstime: reaped children count too
                total += sum(int(fields[i]) for i in (11, 12, 13, 14)) / os.sysconf("SC_CLK_TCK")
        return total

    def _status(self, key: str) -> float:
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024 / 1e6  # kB -> MB
        return 0.0

    def rss_mb(self) -> float:
        if psutil is not None:
            return psutil.Process(self.pid).memory_info().rss / 1e6
        return self._status("VmRSS")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def _host_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, all cores, from /proc/stat."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:9]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _remove_containers(server_id: str, tries: int = 10) -> None:
    """Whatever containers the server left (it removes its own on a clean stop); waits out a dockerd restart."""
    for _ in range(tries):
        listed = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=aicode.server={server_id}"],
                                capture_output=True, text=True, check=False)
        ids = listed.stdout.split()
        if listed.returncode == 0 and (not ids or subprocess.run(
                ["docker", "rm", "-f", *ids], capture_output=True, check=False).returncode == 0):
            return
        time.sleep(3)
    print(f"could not remove the containers labelled aicode.server={server_id}", file=sys.stderr)


def _drop_database(name: str) -> None:
    async def drop() -> None:
        admin = await asyncpg.connect(ADMIN_URL)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    asyncio.run(drop())


@dataclass
class Server:
    url: str
    database_url: str
    process: ServerProcess
    http: httpx.AsyncClient  # signed in as the benchmark user, with an API token
    token: str
    workspace_id: str


@contextlib.asynccontextmanager
async def running_server(image: str, max_concurrent: int, redis: bool):
    key = uuid.uuid4().hex[:8]
    name = f"aicode_load_{key}"
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    _cleanups[f"db-{key}"] = lambda: _drop_database(name)
    tmp = Path(tempfile.mkdtemp(prefix="aicode-load-"))
    _cleanups[f"tmp-{key}"] = lambda: shutil.rmtree(tmp, ignore_errors=True)
    repo = make_repo(tmp / "repos" / "project")
    data_dir = (tmp / "data").resolve()
    server_id = server_identity(data_dir)
    port = free_port()
    database_url = urlunsplit(urlsplit(ADMIN_URL)._replace(path=f"/{name}"))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AICODE_")},
        "AICODE_DATABASE_URL": database_url, "AICODE_DATA_DIR": str(data_dir),
        "AICODE_HOST": "127.0.0.1", "AICODE_PORT": str(port),
        "AICODE_BOOTSTRAP_ADMIN": "admin:load-admin-password", "AICODE_LOCAL_REPO_ROOTS": str(tmp / "repos"),
        "AICODE_WORKSPACE_IMAGE": image, "AICODE_WORKSPACE_NETWORK": "none",
        "AICODE_MAX_CONCURRENT_TASKS": str(max_concurrent), "AICODE_MAX_QUEUED_PER_USER": "1000",
        "AICODE_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "warning"),
    }
    if redis:
        env["AICODE_REDIS_URL"] = REDIS_URL
    log = open(os.environ["BENCH_SERVER_LOG"], "a") if os.environ.get("BENCH_SERVER_LOG") else subprocess.DEVNULL
    # Its own session: a Ctrl-C in the terminal reaches only us, and we stop it in order.
    popen = subprocess.Popen([sys.executable, "-m", "aicode", "serve"], env=env, stdout=log, stderr=log,
                             start_new_session=True, cwd=ROOT)
    process = ServerProcess(popen)
    _cleanups[f"containers-{key}"] = lambda: _remove_containers(server_id)
    _cleanups[f"server-{key}"] = process.stop
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            await _wait_healthy(http)
            token, workspace_id = await _set_up_user(http, repo)
            http.headers["Authorization"] = f"Bearer {token}"
            yield Server(url, database_url, process, http, token, workspace_id)
    finally:
        for step in ("server", "containers", "tmp", "db"):
            if (undo := _cleanups.get(f"{step}-{key}")) is not None:
                await asyncio.to_thread(undo)  # interrupted here, the step is still left for _run_cleanups
                _cleanups.pop(f"{step}-{key}", None)


async def _set_up_user(http: httpx.AsyncClient, repo: Path) -> tuple[str, str]:
    """A user `loader` with an Anthropic API key credential, an API token, and a ready workspace on `repo`."""

    async def login(username: str, password: str) -> dict[str, str]:
        answer = await http.post("/api/auth/login", json={"username": username, "password": password})
        answer.raise_for_status()
        return {"Authorization": f"Bearer {answer.json()['access_token']}"}

    admin = await login("admin", "load-admin-password")
    (await http.post("/api/admin/users", json={"username": "loader", "password": "loader-password"},
                     headers=admin)).raise_for_status()
    user = await login("loader", "loader-password")
    created = await http.post("/api/tokens", json={"name": "load"}, headers=user)
    created.raise_for_status()
    token = created.json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    (await http.put("/api/me/credentials/anthropic", json={"api_key": "sk-load-key"}, headers=auth)).raise_for_status()
    workspace = (await http.post("/api/workspaces", json={"name": "load", "repo_url": str(repo)}, headers=auth)).json()
    async with asyncio.timeout(60):
        while workspace["status"] == "cloning":
            await asyncio.sleep(0.05)
            workspace = (await http.get(f"/api/workspaces/{workspace['id']}", headers=auth)).json()
    if workspace["status"] != "ready":
        raise RuntimeError(f"workspace not ready: {workspace}")
    return token, workspace["id"]


# -- the SSE readers --------------------------------------------------------------------------------


@dataclass
class Reader:
    task_id: str
    seqs_ok: int = 0  # distinct seqs received in order
    last: int = 0
    dups: int = 0
    gaps: int = 0
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    printed: list[float] = field(default_factory=list)  # the print time of each latency sample
    first_at: float = 0.0
    last_at: float = 0.0


async def follow(http: httpx.AsyncClient, reader: Reader) -> None:
    """Read the task's SSE stream to its end: `id:` gives the seq, a burst `data:` the print time."""
    try:
        async with http.stream("GET", f"/api/tasks/{reader.task_id}/events",
                               headers={"Accept": "text/event-stream"}) as response:
            if response.status_code != 200:
                reader.errors.append(f"HTTP {response.status_code}")
                return
            pending = b""
            async for chunk in response.aiter_raw():
                now = time.time()
                pending += chunk
                *blocks, pending = pending.split(b"\r\n\r\n")
                for block in blocks:
                    start = block.find(b"id: ")
                    if start < 0:
                        continue  # heartbeat comment or the retry: preamble
                    end = block.find(b"\r\n", start)
                    seq = int(block[start + 4:end if end >= 0 else None])
                    if seq <= reader.last:
                        reader.dups += 1
                        continue
                    if seq != reader.last + 1:
                        reader.gaps += 1
                    reader.last = seq
                    reader.seqs_ok += 1
                    if (match := STAMP.search(block)) is not None:
                        stamp = float(match.group(1))
                        reader.latencies.append(now - stamp)
                        reader.printed.append(stamp)
                        reader.first_at = reader.first_at or now
                        reader.last_at = now
    except (httpx.HTTPError, OSError) as exc:
        reader.errors.append(f"{type(exc).__name__}: {exc}")


# -- one scenario -----------------------------------------------------------------------------------


@dataclass
class Result:
    tasks: int
    clients: int
    figures: dict[str, float]
    notes: list[str]


async def _wait_finished(http: httpx.AsyncClient, workspace_id: str, task_ids: list[str],
                         timeout: float) -> dict[str, dict]:
    """Once a second, one listing of the workspace's tasks (not a request per task: the server is measured)."""
    wanted = set(task_ids)
    async with asyncio.timeout(timeout):
        while True:
            answer = await http.get("/api/tasks", params={"workspace_id": workspace_id, "limit": 500})
            if answer.status_code != 200:
                raise RuntimeError(f"GET /api/tasks: {answer.status_code} {answer.text[:300]}")
            done = {t["id"]: t for t in answer.json() if t["id"] in wanted and t["status"] in TERMINAL}
            if len(done) == len(wanted):
                return done
            await asyncio.sleep(1)


async def _db_figures(database_url: str, task_ids: list[str]) -> tuple[int, float, list[float], float]:
    """(events stored, their ts span s, persist lags s, agents' print span s) for the run's tasks."""
    conn = await asyncpg.connect(database_url)
    try:
        ids = [uuid.UUID(t) for t in task_ids]
        count, span = await conn.fetchrow(
            "SELECT count(*), extract(epoch FROM max(ts) - min(ts))::float8 FROM task_events WHERE task_id = ANY($1)",
            ids)
        rows = await conn.fetch(
            """SELECT extract(epoch FROM ts)::float8 AS ts, substring(data->>'text' FROM 'burst \\d+ at ([0-9.]+)') AS t
               FROM task_events WHERE task_id = ANY($1) AND type = 'message' AND data->>'text' LIKE 'burst %'""", ids)
    finally:
        await conn.close()
    printed = [float(r["t"]) for r in rows]
    lags = [r["ts"] - float(r["t"]) for r in rows]
    return count, span or 0.0, lags, (max(printed) - min(printed)) if printed else 0.0


async def _loop_lag(lags: list[float], tick: float = 0.01) -> None:
    """How late this process's own event loop wakes up: large means the readers are starved or busy,
    and the measured latency includes their own queueing."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + tick
        await asyncio.sleep(tick)
        lags.append(loop.time() - due)


def _timeline(readers: list[Reader], window: float) -> str:
    """p50 delivery latency per `window` s of print time: flat = keeping up, rising = a growing backlog."""
    pairs = [(t, lat) for r in readers for t, lat in zip(r.printed, r.latencies, strict=True)]
    if not pairs:
        return "-"
    start = min(t for t, _ in pairs)
    buckets: dict[int, list[float]] = {}
    for t, lat in pairs:
        buckets.setdefault(int((t - start) // window), []).append(lat)
    return ", ".join(f"{percentile(buckets[k], 50) * 1000:.0f}" for k in sorted(buckets))


async def _commits(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
    finally:
        await conn.close()


async def _sample_rss(server: ServerProcess, peak: list[float]) -> None:
    while True:
        with contextlib.suppress(Exception):
            peak[0] = max(peak[0], server.rss_mb())
        await asyncio.sleep(0.25)


def _start_profile(pid: int, out: Path, seconds: float) -> subprocess.Popen[bytes] | None:
    if shutil.which("py-spy") is None:
        print("--profile: py-spy not found (pip install py-spy); not profiling", file=sys.stderr)
        return None
    spy = subprocess.Popen(["py-spy", "record", "--nonblocking", "--format", "raw", "--rate", "100",
                            "-d", str(int(seconds)), "-o", str(out), "--pid", str(pid)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def stop() -> None:
        if spy.poll() is None:
            spy.send_signal(signal.SIGINT)
            try:
                spy.wait(20)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait(5)

    _cleanups[f"py-spy-{pid}"] = stop
    return spy


_ENTRY = ("<frozen runpy>", "aicode/__main__.py", "aicode/cli/", "uvicorn/main.py", "uvicorn/server.py",
          "uvicorn/_compat.py", "asyncio/runners.py")


def _profile_summary(path: Path, top: int = 15) -> list[str]:
    """Leaf frames (self time) and aicode/, litestar/, uvicorn/, asyncpg/ functions (inclusive), by share
    of samples. py-spy's stacks of coroutines are often cut short, so the inclusive shares are floors."""
    leaf: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        leaf[frames[-1]] += n
        for function in {re.sub(r":\d+\)$", ")", f) for f in frames}:
            if any(k in function for k in ("aicode/", "litestar/", "uvicorn/", "asyncpg/")) and \
                    not any(k in function for k in _ENTRY):
                inclusive[function] += n
    if not total:
        return ["(no samples)"]

    def short(frame: str) -> str:
        return re.sub(r"\(/\S*?/(site-packages|python3\.\d+)/", "(", frame)

    lines = [f"  {total} samples; self time by leaf frame:"]
    lines += [f"    {100 * n / total:5.1f}%  {short(f)}" for f, n in leaf.most_common(top)]
    lines.append("  inclusive, by function:")
    lines += [f"    {100 * n / total:5.1f}%  {short(f)}" for f, n in inclusive.most_common(top * 2)]
    return lines


async def run_scenario(image: str, tasks: int, clients: int, duration: float, rate: float, redis: bool,
                       profile: Path | None) -> Result:
    count = int(rate * duration)
    interval_ms = 1000 / rate
    prompt = f"@burst {count} {interval_ms:g}"
    async with running_server(image, tasks, redis) as server:
        # Warm-up: the first container start pays for cold caches.
        warm = (await server.http.post(f"/api/workspaces/{server.workspace_id}/tasks",
                                       json={"prompt": "@say warm"})).json()
        await _wait_finished(server.http, server.workspace_id, [warm["id"]], 120)
        await asyncio.sleep(1)
        idle_rss = server.process.rss_mb()
        commits_before = await _commits(server.database_url)
        cpu_before = server.process.cpu_seconds()
        own_before = resource.getrusage(resource.RUSAGE_SELF)
        host_before = _host_cpu()
        peak = [idle_rss]
        sampler = asyncio.create_task(_sample_rss(server.process, peak))
        own_lags: list[float] = []
        ticker = asyncio.create_task(_loop_lag(own_lags))
        spy = _start_profile(server.process.pid, profile / f"load-{tasks}x{clients}{'-redis' if redis else ''}.txt",
                             duration + 60) if profile else None
        started = time.time()
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        timeout = httpx.Timeout(60, read=90)
        async with httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {server.token}"},
                                     limits=limits, timeout=timeout) as streams:
            submitted = []
            for _ in range(tasks):
                answer = await server.http.post(f"/api/workspaces/{server.workspace_id}/tasks", json={"prompt": prompt})
                answer.raise_for_status()
                submitted.append(answer.json()["id"])
            readers = [Reader(submitted[i % tasks]) for i in range(clients)]
            following = [asyncio.create_task(follow(streams, reader)) for reader in readers]
            finished = await _wait_finished(server.http, server.workspace_id, submitted, duration * 4 + 300)
            try:
                async with asyncio.timeout(120):
                    await asyncio.gather(*following)
            except TimeoutError:
                for task in following:
                    task.cancel()
                await asyncio.gather(*following, return_exceptions=True)
                for reader in readers:
                    if reader.last < finished[reader.task_id]["last_seq"]:
                        reader.errors.append("stream still open 120 s after the task ended")
        wall = time.time() - started
        cpu = server.process.cpu_seconds() - cpu_before
        own_after = resource.getrusage(resource.RUSAGE_SELF)
        host_after = _host_cpu()
        sampler.cancel()
        ticker.cancel()
        peak_rss = peak[0]
        if spy is not None:
            _cleanups.pop(f"py-spy-{server.process.pid}")()
        await asyncio.sleep(1.5)  # PostgreSQL flushes its statistics about once a second
        commits = await _commits(server.database_url) - commits_before
        stored, span, lags, print_span = await _db_figures(server.database_url, submitted)

    failed = [t for t in finished.values() if t["status"] != "succeeded"]
    expected = {task_id: task["last_seq"] for task_id, task in finished.items()}
    lost = sum(max(0, expected[r.task_id] - r.seqs_ok) for r in readers)
    disconnects = sum(1 for r in readers if not r.errors and r.last < expected[r.task_id])
    errors = sum(len(r.errors) for r in readers) + disconnects + len(failed)
    latencies = [value for r in readers for value in r.latencies]
    received = sum(r.seqs_ok for r in readers)
    firsts = [r.first_at for r in readers if r.first_at]
    lasts = [r.last_at for r in readers if r.last_at]
    delivery_span = (max(lasts) - min(firsts)) if firsts else 0.0
    bursts = len(lags)
    notes = [f"{r.task_id[:8]}: {e}" for r in readers for e in r.errors][:5]
    notes += [f"task {t['id'][:8]} {t['status']}: {t.get('error')}" for t in failed][:5]
    figures = {
        "persisted/s": stored / span if span else 0.0,
        "offered/s": bursts / print_span if print_span else 0.0,
        "persist p50": percentile(lags, 50) * 1000 if lags else 0.0,
        "persist p99": percentile(lags, 99) * 1000 if lags else 0.0,
        "delivered/s": received / delivery_span if delivery_span else 0.0,
        "p50 ms": percentile(latencies, 50) * 1000 if latencies else 0.0,
        "p99 ms": percentile(latencies, 99) * 1000 if latencies else 0.0,
        "lost": lost,
        "dup/gap": sum(r.dups + r.gaps for r in readers),
        "errors": errors,
        "server CPU s": cpu,
        "peak RSS MB": peak_rss,
        "RSS/task MB": (peak_rss - idle_rss) / tasks,
        "client CPU s": (own_after.ru_utime + own_after.ru_stime) - (own_before.ru_utime + own_before.ru_stime),
        "wall s": wall,
        "host CPU %": 100 * (host_after[0] - host_before[0]) / max(1, host_after[1] - host_before[1]),
    }
    notes.insert(0, f"{tasks} tasks x {count} bursts ({interval_ms:g} ms apart), {clients} clients: "
                    f"{stored} events stored, {received} delivered, {len(latencies)} latency samples; "
                    f"idle RSS {idle_rss:.0f} MB")
    window = max(1.0, round(duration / 6))
    notes.insert(1, f"  latency p50 ms per {window:g} s of the run: {_timeline(readers, window)}; "
                    f"readers' own loop lag p50/p99 {percentile(own_lags, 50) * 1000:.1f}/"
                    f"{percentile(own_lags, 99) * 1000:.1f} ms; database commits {commits} "
                    f"({commits / max(1, stored):.2f} per stored event, all statements of the server included)")
    if profile:
        out = profile / f"load-{tasks}x{clients}{'-redis' if redis else ''}.txt"
        if out.exists():
            notes += [f"py-spy profile {out}:", *_profile_summary(out)]
    return Result(tasks, clients, figures, notes)


# -- output -----------------------------------------------------------------------------------------

COLUMNS = [("persisted/s", "{:,.0f}"), ("offered/s", "{:,.0f}"), ("persist p50", "{:.1f}"),
           ("persist p99", "{:.1f}"), ("delivered/s", "{:,.0f}"), ("p50 ms", "{:.1f}"), ("p99 ms", "{:.1f}"),
           ("lost", "{:.0f}"), ("dup/gap", "{:.0f}"), ("errors", "{:.0f}"), ("server CPU s", "{:.1f}"),
           ("peak RSS MB", "{:.0f}"), ("RSS/task MB", "{:.1f}"), ("client CPU s", "{:.1f}"), ("wall s", "{:.1f}"),
           ("host CPU %", "{:.0f}")]


def table(results: list[Result]) -> str:
    head = ["tasks", "clients", *(name for name, _ in COLUMNS)]
    rows = [[str(r.tasks), str(r.clients), *(fmt.format(r.figures[name]) for name, fmt in COLUMNS)]
            for r in results]
    if len(results) == 2:
        small, big = results
        ratio = ["ratio", f"{big.tasks / small.tasks:g}x"]
        for name, _ in COLUMNS:
            a, b = small.figures[name], big.figures[name]
            ratio.append(f"{b / a:.2f}" if a else ("-" if not b else "inf"))
        rows.append(ratio)
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]
    return "\n".join("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)) for row in [head, *rows])


async def main(duration: float, rate: float, redis: bool, scenarios: list[tuple[int, int]],
               profile: Path | None) -> None:
    image = await fake_image()
    if profile:
        profile.mkdir(parents=True, exist_ok=True)
    results = []
    for tasks, clients in scenarios:
        result = await run_scenario(image, tasks, clients, duration, rate, redis, profile)
        for note in result.notes:
            print(note, flush=True)
        results.append(result)
    print(f"\nfan-out load, D = {duration:g} s, {rate:g} events/s per task, channels: "
          f"{'redis' if redis else 'memory'} (latency and persist lag in ms; ratio = {scenarios[-1][0]}-task "
          f"row / {scenarios[0][0]}-task row)")
    print(table(results))


def _as_ctrl_c(signum: int, frame: object) -> None:
    os.kill(os.getpid(), signal.SIGINT)  # SIGTERM ends the run the way Ctrl-C does


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=30, help="seconds each agent streams (120 for the full figure)")
    parser.add_argument("--rate", type=float, default=200, help="events per second per task")
    parser.add_argument("--redis", action="store_true", help="fan out through Redis channels")
    parser.add_argument("--scenario", action="append", metavar="TASKSxCLIENTS",
                        help="instead of 5x25 and 20x100 (repeatable)")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="sample the server with py-spy into DIR")
    args = parser.parse_args()
    chosen = [tuple(int(n) for n in s.lower().split("x")) for s in args.scenario] if args.scenario else SCENARIOS
    # Ctrl-C works even when started with SIGINT ignored (in the background of a script).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _as_ctrl_c)
    try:
        asyncio.run(main(args.duration, args.rate, args.redis, chosen, args.profile))
    except KeyboardInterrupt:
        print("interrupted: cleaning up", file=sys.stderr)
        sys.exit(130)
    finally:
        _run_cleanups()
