"""Benchmark 3: how many events per second one task can persist and deliver to 1, 10 and 100
WebSocket clients, with p50/p99 delivery latency (agent print → client receive).

    python benchmarks/streaming.py [--events 3000] [--clients 1 10 100]

The fake agent prints N text blocks as fast as it can, each stamped with the wall-clock time it was
printed (host and container share the clock). Every client connects before the agent starts, so it
sees the replay and then the live stream. The clients run in this process: with 100 of them on a
2-core machine, part of what is measured is the clients' own decoding.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time

import websockets

from harness import bench_server, fake_image, percentile

STAMP = re.compile(r"burst (\d+) at ([0-9.]+)")


async def client(url: str, headers: dict[str, str], expected: int) -> tuple[list[float], list[int], float, float]:
    latencies, seqs = [], []
    first = last = 0.0
    async with websockets.connect(url, additional_headers=headers, max_size=None, open_timeout=30) as socket:
        async for raw in socket:
            now = time.time()
            event = json.loads(raw)
            seqs.append(event["seq"])
            if event["type"] == "message" and (match := STAMP.match(event["data"].get("text", ""))):
                latencies.append(now - float(match.group(2)))
                first = first or now
                last = now
                if len(latencies) == expected:
                    break
    return latencies, seqs, first, last


async def run(server, count: int, clients: int) -> str:
    task = await server.submit(f"@sleep 1\n@burst {count}")
    url = server.url.replace("http", "ws", 1) + f"/ws/tasks/{task['id']}?after=0"
    auth = {"Authorization": server.headers["authorization"]}
    results = await asyncio.gather(*(client(url, auth, count) for _ in range(clients)))
    finished = await server.wait_finished(task["id"])
    assert finished["status"] == "succeeded", finished
    latencies = [value for result in results for value in result[0]]
    for _, seqs, _, _ in results:
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "gap or duplicate in a client's stream"
    spans = [last - first for _, _, first, last in results]
    rate = count / max(spans)
    return (f"{clients:>3} client(s): {count} events each, slowest client {rate:,.0f} events/s, "
            f"all clients {rate * clients:,.0f} deliveries/s; latency p50 {percentile(latencies, 50) * 1000:.1f} ms, "
            f"p99 {percentile(latencies, 99) * 1000:.1f} ms")


async def persisted_rate(server, count: int) -> str:
    """No readers at all: how fast one task's events are persisted (the writer's own ceiling)."""
    task = await server.submit(f"@burst {count}")
    await server.wait_finished(task["id"])
    events = (await server.http.get(f"/api/tasks/{task['id']}/events", params={"limit": 5000})).json()
    stamps = [float(m.group(2)) for e in events if e["type"] == "message"
              and (m := STAMP.match(e["data"].get("text", "")))]
    stored = [e for e in events if e["type"] == "message"]
    from datetime import datetime

    span = (datetime.fromisoformat(stored[-1]["ts"]) - datetime.fromisoformat(stored[0]["ts"])).total_seconds()
    printed = stamps[-1] - stamps[0]
    return (f"persist only: {len(stored)} events stored in {span:.2f} s ({len(stored) / max(span, 1e-6):,.0f} events/s); "
            f"the agent printed them in {printed:.2f} s")


async def main(count: int, client_counts: list[int]) -> None:
    image = await fake_image()
    async with bench_server(image) as server:
        print(await persisted_rate(server, count))
        for clients in client_counts:
            print(await run(server, count, clients))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 10, 100])
    args = parser.parse_args()
    asyncio.run(main(args.events, args.clients))
