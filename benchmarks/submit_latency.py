"""Benchmark 1: submit → `agent.started`, p50 and p95 over 20 sequential tasks (fake agent).

    python benchmarks/submit_latency.py [--tasks 20]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from harness import bench_server, fake_image, percentile


async def main(count: int) -> None:
    image = await fake_image()
    async with bench_server(image) as server:
        latencies = []
        for _ in range(count):
            started = time.perf_counter()
            task = await server.submit("@say hi")
            seen = await _agent_started_at(server, task["id"])
            latencies.append(seen - started)
            await server.wait_finished(task["id"])
    print(f"submit -> agent.started over {count} sequential tasks: "
          f"p50 {percentile(latencies, 50) * 1000:.0f} ms, p95 {percentile(latencies, 95) * 1000:.0f} ms, "
          f"min {min(latencies) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms")


async def _agent_started_at(server, task_id: str) -> float:
    """Follow the SSE stream and note when agent.started arrives."""
    async with server.http.stream("GET", f"/api/tasks/{task_id}/events",
                                  headers={"Accept": "text/event-stream"}) as response:
        async for line in response.aiter_lines():
            if line.startswith("event:") and line.split(":", 1)[1].strip() == "agent.started":
                return time.perf_counter()
    raise RuntimeError("the stream ended without agent.started")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=20)
    asyncio.run(main(parser.parse_args().tasks))
