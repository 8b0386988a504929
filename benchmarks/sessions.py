"""Benchmark 6: warm start and live sessions, with the real Claude Code CLI against the mock Messages API.

    python benchmarks/sessions.py [--runs 10]

1. First turn: submit → `agent.started` (as a streaming client receives it), with the warm pool on and
   off, against the floor: a `docker exec` of the same CLI into an already running container until
   its first output line.
2. Next prompt: prompt → the first agent event after it, in a live session (the CLI already running)
   and as a follow-up of an ordinary task (a new container and `claude --resume`).

The mock answers at once, so the figures are aicode's own cost plus the CLI's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
from harness import BASE_IMAGE, bench_server, percentile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.fakes.mock_anthropic import MockAnthropic  # noqa: E402

AGENT_EVENTS = {"agent.started", "message", "message.delta", "tool.call"}


async def first_event(http: httpx.AsyncClient, task_id: str, kinds: set[str], after: int, started: float) -> float:
    """Seconds from `started` until a streaming reader gets an event of `kinds` with seq > `after` (or live)."""
    async with http.stream("GET", f"/api/tasks/{task_id}/events", params={"after": after},
                           headers={"Accept": "text/event-stream"}, timeout=120) as answer:
        async for line in answer.aiter_lines():
            if line.startswith("data:") and json.loads(line[5:])["type"] in kinds:
                return time.perf_counter() - started
    raise RuntimeError("the stream ended before the event came")


async def wait_status(http: httpx.AsyncClient, task_id: str, done: callable) -> dict:
    async with asyncio.timeout(120):
        while True:
            task = (await http.get(f"/api/tasks/{task_id}")).json()
            if done(task):
                return task
            await asyncio.sleep(0.02)


def exec_floor(mock_url: str, runs: int) -> list[float]:
    """`docker exec` of the CLI into a running container (same hardening) until its first line."""
    name = f"aicode-bench-floor-{time.time_ns()}"
    subprocess.run(["docker", "run", "-d", "--rm", "--name", name, "--network", "host", "--user", "1000:1000",
                    "--read-only", "--tmpfs", "/tmp", "--tmpfs", "/home/agent:uid=1000,gid=1000", "--cap-drop", "ALL",
                    "--security-opt", "no-new-privileges", "--entrypoint", "sleep", BASE_IMAGE, "infinity"],
                   check=True, capture_output=True)
    times = []
    try:
        for _ in range(runs):
            started = time.perf_counter()
            process = subprocess.Popen(
                ["docker", "exec", "-e", f"ANTHROPIC_BASE_URL={mock_url}", "-e", "ANTHROPIC_API_KEY=sk-x",
                 "-e", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1", "-e", "HOME=/home/agent", name,
                 "claude", "-p", "--output-format", "stream-json", "--verbose", "--dangerously-skip-permissions",
                 "--", "hi"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            assert process.stdout is not None
            process.stdout.readline()
            times.append(time.perf_counter() - started)
            process.wait(60)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    return times


async def first_turns(mock: MockAnthropic, pool: int, runs: int) -> list[float]:
    async with bench_server(BASE_IMAGE, network="gateway", max_concurrent=4, extra_env={
            "AICODE_ANTHROPIC_UPSTREAM": mock.url, "AICODE_WARM_POOL": str(pool)}) as server:
        times = []
        for index in range(runs + 1):  # the first is a warm-up: it makes the workspace's warm container
            await asyncio.sleep(3.0)  # the pool makes its next container meanwhile, as between real submits
            started = time.perf_counter()
            task = await server.submit("say hi")
            elapsed = await first_event(server.http, task["id"], {"agent.started"}, 0, started)
            await server.wait_finished(task["id"])
            if index:
                times.append(elapsed)
        return times


async def next_prompts(mock: MockAnthropic, runs: int) -> tuple[list[float], list[float]]:
    async with bench_server(BASE_IMAGE, network="gateway", extra_env={"AICODE_ANTHROPIC_UPSTREAM": mock.url,
                                                                       "AICODE_WARM_POOL": "1"}) as server:
        http = server.http
        created = (await http.post(f"/api/workspaces/{server.workspace_id}/sessions", json={"prompt": "start"})).json()
        await wait_status(http, created["id"], lambda t: t["turns"] >= 1)
        live = []
        for turn in range(2, runs + 2):
            task = (await http.get(f"/api/tasks/{created['id']}")).json()
            started = time.perf_counter()
            await http.post(f"/api/tasks/{created['id']}/messages", json={"prompt": f"prompt {turn}"})
            live.append(await first_event(http, created["id"], AGENT_EVENTS, task["last_seq"], started))
            await wait_status(http, created["id"], lambda t, n=turn: t["turns"] >= n)
        await http.delete(f"/api/sessions/{created['id']}")
        task = await server.submit("start")
        await server.wait_finished(task["id"])
        resumed = []
        for turn in range(runs):
            current = (await http.get(f"/api/tasks/{task['id']}")).json()
            started = time.perf_counter()
            await http.post(f"/api/tasks/{task['id']}/messages", json={"prompt": f"follow-up {turn}"})
            resumed.append(await first_event(http, task["id"], AGENT_EVENTS, current["last_seq"], started))
            await server.wait_finished(task["id"])
        return live, resumed


def show(label: str, values: list[float]) -> None:
    print(f"{label:<44} p50 {percentile(values, 50) * 1000:7.0f} ms   p95 {percentile(values, 95) * 1000:7.0f} ms"
          f"   (n={len(values)})")


async def main(runs: int) -> None:
    async with MockAnthropic() as mock:
        floor = await asyncio.to_thread(exec_floor, mock.url, runs)
        warm = await first_turns(mock, 1, runs)
        cold = await first_turns(mock, 0, runs)
        live, resumed = await next_prompts(mock, runs)
    print("1. first turn: submit -> agent.started")
    show("   floor: docker exec into a running container", floor)
    show("   aicode, warm pool on", warm)
    show("   aicode, warm pool off", cold)
    print(f"   pool on minus floor (p50): {(percentile(warm, 50) - percentile(floor, 50)) * 1000:.0f} ms;"
          f" pool off / pool on (p50): {percentile(cold, 50) / percentile(warm, 50):.2f}")
    print("2. next prompt: prompt -> first agent event")
    show("   live session (one CLI process)", live)
    show("   follow-up with --resume (new container)", resumed)
    print(f"   follow-up / live (p50): {percentile(resumed, 50) / percentile(live, 50):.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    asyncio.run(main(parser.parse_args().runs))
