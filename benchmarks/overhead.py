"""Benchmark 2: orchestration overhead. One scripted real-CLI task (Write, Bash, answer) through aicode,
against the same CLI and script run by a plain `docker run` of the same image; the ratio of wall times.

    python benchmarks/overhead.py [--runs 5]

Both sides use the same mock Messages API on 127.0.0.1 and start from the same repository content.
The plain run reaches it directly (host networking, the key in its environment); aicode runs as
deployed: on its internal agent network, through its model gateway (the mock is the upstream).
Runs alternate between the two so machine noise hits both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from harness import BASE_IMAGE, bench_server, make_repo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.fakes.mock_anthropic import MockAnthropic, reply, text, tool_use  # noqa: E402

PROMPT = "Create hello.txt, show it, and report."


def script() -> list:
    return [
        reply(tool_use("Write", {"file_path": "/workspace/hello.txt", "content": "hello\n"})),
        reply(tool_use("Bash", {"command": "cat hello.txt", "description": "show it"})),
        reply(text("Done: hello.txt written.")),
    ]


async def plain_docker_run(mock: MockAnthropic, work: Path) -> float:
    """The baseline: what an operator would type, with the same hardening flags aicode applies."""
    checkout, config = work / "checkout", work / "claude"
    make_repo(checkout)
    config.mkdir()
    os.system(f"chown -R 1000:1000 {work}")
    mock.script(script())
    argv = ["docker", "run", "--rm", "--network", "host", "--user", "1000:1000", "--read-only",
            "--tmpfs", "/tmp", "--tmpfs", "/home/agent:uid=1000,gid=1000", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges", "-v", f"{checkout}:/workspace", "-v",
            f"{config}:/home/agent/.claude", "-e", f"ANTHROPIC_BASE_URL={mock.url}", "-e", "ANTHROPIC_API_KEY=sk-x",
            "-e", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1", "-e", "DISABLE_AUTOUPDATER=1",
            "-e", "CLAUDE_CONFIG_DIR=/home/agent/.claude", "-e", "HOME=/home/agent", BASE_IMAGE,
            "claude", "-p", "--output-format", "stream-json", "--verbose", "--dangerously-skip-permissions",
            "--", PROMPT]
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.DEVNULL,
                                                   stderr=asyncio.subprocess.DEVNULL)
    if await process.wait() != 0:
        raise RuntimeError("the plain docker run failed")
    return time.perf_counter() - started


async def through_aicode(server, mock: MockAnthropic) -> float:
    mock.script(script())
    started = time.perf_counter()
    task = await server.submit(PROMPT)
    done = await server.wait_finished(task["id"])
    elapsed = time.perf_counter() - started
    if done["status"] != "succeeded":
        raise RuntimeError(f"the aicode task failed: {done['error']}")
    return elapsed


async def main(runs: int) -> None:
    async with MockAnthropic() as mock:
        # aicode as deployed: the default `gateway` network, model calls through its gateway to the mock.
        async with bench_server(BASE_IMAGE, network="gateway", extra_env={
            "AICODE_ANTHROPIC_UPSTREAM": mock.url}) as server:
            await through_aicode(server, mock)  # warm-up: page cache, image layers
            plain, aicode = [], []
            for _ in range(runs):
                work = Path(tempfile.mkdtemp(prefix="aicode-plain-"))
                try:
                    plain.append(await plain_docker_run(mock, work))
                finally:
                    shutil.rmtree(work, ignore_errors=True)
                aicode.append(await through_aicode(server, mock))
    p, a = statistics.median(plain), statistics.median(aicode)
    print(f"plain docker run: median {p:.3f} s  ({', '.join(f'{x:.2f}' for x in plain)})")
    print(f"through aicode:   median {a:.3f} s  ({', '.join(f'{x:.2f}' for x in aicode)})")
    print(f"overhead ratio (aicode / plain): {a / p:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    asyncio.run(main(parser.parse_args().runs))
