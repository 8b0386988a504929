"""Benchmark 2: orchestration overhead, per agent. One scripted real-CLI task (write a file, run a command,
answer) through aicode, against the same CLI and script run by a plain `docker run` of the same image; the
ratio of wall times.

    python benchmarks/overhead.py [--runs 5] [--agent claude|codex|gemini|all]

Both sides use the same mock of the agent's model API on 127.0.0.1 and start from the same repository
content. The plain run reaches it directly (host networking, the key in its environment); aicode runs as
deployed: on its internal agent network, through its model gateway (the mock is the upstream). Runs
alternate between the two so machine noise hits both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import BASE_IMAGE, bench_server, make_repo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from aicode.agents.gemini import HEADLESS_SETTINGS as GEMINI_SETTINGS  # noqa: E402
from tests.fakes import mock_gemini, mock_openai  # noqa: E402
from tests.fakes.mock_anthropic import MockAnthropic, reply, text, tool_use  # noqa: E402

PROMPT = "Create hello.txt, show it, and report."
HARDENING = ["--network", "host", "--user", "1000:1000", "--read-only", "--tmpfs", "/tmp",
             "--tmpfs", "/home/agent:uid=1000,gid=1000", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]


@dataclass(frozen=True)
class Agent:
    name: str
    mock: Callable[[], AbstractAsyncContextManager[Any]]
    script: Callable[[], list[Any]]
    upstream_setting: str
    upstream: Callable[[Any], str]
    # (docker run options, argv) of the plain run: state dir mounted at `state`, the mock reached directly.
    plain: Callable[[Any, Path], tuple[list[str], list[str]]]


def _claude_plain(mock: MockAnthropic, state: Path) -> tuple[list[str], list[str]]:
    options = ["-v", f"{state}:/home/agent/.claude", "-e", f"ANTHROPIC_BASE_URL={mock.url}",
               "-e", "ANTHROPIC_API_KEY=sk-x", "-e", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
               "-e", "DISABLE_AUTOUPDATER=1", "-e", "CLAUDE_CONFIG_DIR=/home/agent/.claude"]
    return options, ["claude", "-p", "--output-format", "stream-json", "--verbose",
                     "--dangerously-skip-permissions", "--", PROMPT]


def _codex_plain(mock: mock_openai.MockOpenAI, state: Path) -> tuple[list[str], list[str]]:
    provider = {"name": '"mock"', "base_url": json.dumps(mock.url + "/v1"), "wire_api": '"responses"',
                "env_key": '"OPENAI_API_KEY"', "request_max_retries": "0", "stream_max_retries": "0"}
    flags = [arg for key, value in provider.items() for arg in ("-c", f"model_providers.mock.{key}={value}")]
    options = ["-v", f"{state}:/home/agent/.codex", "-e", "CODEX_HOME=/home/agent/.codex", "-e", "OPENAI_API_KEY=sk-x"]
    return options, ["codex", "exec", "--json", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox",
                     "-c", 'model_provider="mock"', *flags, "--", PROMPT]


def _gemini_plain(mock: mock_gemini.MockGemini, state: Path) -> tuple[list[str], list[str]]:
    (state / ".gemini").mkdir()
    (state / ".gemini" / "settings.json").write_text(GEMINI_SETTINGS)
    options = ["-v", f"{state}:/home/agent/.gemini-cli", "-e", "GEMINI_CLI_HOME=/home/agent/.gemini-cli",
               "-e", "GEMINI_API_KEY=sk-x", "-e", f"GOOGLE_GEMINI_BASE_URL={mock.url}", "-e", "GEMINI_CLI_NO_RELAUNCH=true"]
    return options, ["gemini", "--model=gemini-2.5-pro", "--output-format=stream-json", "--yolo", f"--prompt={PROMPT}"]


AGENTS = {
    "claude": Agent(
        "claude", MockAnthropic,
        lambda: [reply(tool_use("Write", {"file_path": "/workspace/hello.txt", "content": "hello\n"})),
                 reply(tool_use("Bash", {"command": "cat hello.txt", "description": "show it"})),
                 reply(text("Done: hello.txt written."))],
        "AICODE_ANTHROPIC_UPSTREAM", lambda mock: mock.url, _claude_plain),
    "codex": Agent(
        "codex", mock_openai.MockOpenAI,
        lambda: [mock_openai.reply(mock_openai.apply_patch(mock_openai.add_file("hello.txt", "hello\n"))),
                 mock_openai.reply(mock_openai.shell("cat hello.txt")),
                 mock_openai.reply("Done: hello.txt written.")],
        "AICODE_OPENAI_UPSTREAM", lambda mock: mock.url + "/v1", _codex_plain),
    "gemini": Agent(
        "gemini", mock_gemini.MockGemini,
        lambda: [mock_gemini.reply(mock_gemini.write_file("hello.txt", "hello\n")),
                 mock_gemini.reply(mock_gemini.run_shell_command("cat hello.txt", "show it")),
                 mock_gemini.reply("Done: hello.txt written.")],
        "AICODE_GEMINI_UPSTREAM", lambda mock: mock.url, _gemini_plain),
}


async def plain_docker_run(agent: Agent, mock: Any, work: Path) -> float:
    """The baseline: what an operator would type, with the same hardening flags aicode applies."""
    checkout, state = work / "checkout", work / "state"
    make_repo(checkout)
    state.mkdir()
    options, argv = agent.plain(mock, state)
    os.system(f"chown -R 1000:1000 {work}")
    mock.script(agent.script())
    command = ["docker", "run", "--rm", *HARDENING, "-v", f"{checkout}:/workspace", "-e", "HOME=/home/agent",
               *options, BASE_IMAGE, *argv]
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(*command, stdin=asyncio.subprocess.DEVNULL,
                                                   stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, stderr = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"the plain docker run of {agent.name} failed: {stderr.decode()[-500:]}")
    if not (checkout / "hello.txt").exists():
        raise RuntimeError(f"the plain docker run of {agent.name} wrote no hello.txt")
    return time.perf_counter() - started


async def through_aicode(agent: Agent, server: Any, mock: Any) -> float:
    mock.script(agent.script())
    started = time.perf_counter()
    task = await server.submit(PROMPT, agent=agent.name)
    done = await server.wait_finished(task["id"])
    elapsed = time.perf_counter() - started
    if done["status"] != "succeeded":
        raise RuntimeError(f"the aicode {agent.name} task failed: {done['error']}")
    return elapsed


async def measure(agent: Agent, runs: int) -> tuple[list[float], list[float]]:
    async with agent.mock() as mock:
        # aicode as deployed: the default `gateway` network, model calls through its gateway to the mock.
        async with bench_server(BASE_IMAGE, network="gateway",
                                extra_env={agent.upstream_setting: agent.upstream(mock)}) as server:
            await through_aicode(agent, server, mock)  # warm-up: page cache, image layers
            plain, aicode = [], []
            for _ in range(runs):
                work = Path(tempfile.mkdtemp(prefix="aicode-plain-"))
                try:
                    plain.append(await plain_docker_run(agent, mock, work))
                finally:
                    shutil.rmtree(work, ignore_errors=True)
                aicode.append(await through_aicode(agent, server, mock))
    return plain, aicode


async def main(runs: int, names: list[str]) -> None:
    for name in names:
        plain, aicode = await measure(AGENTS[name], runs)
        p, a = statistics.median(plain), statistics.median(aicode)
        print(f"[{name}] plain docker run: median {p:.3f} s  ({', '.join(f'{x:.2f}' for x in plain)})")
        print(f"[{name}] through aicode:   median {a:.3f} s  ({', '.join(f'{x:.2f}' for x in aicode)})")
        print(f"[{name}] overhead ratio (aicode / plain): {a / p:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--agent", choices=[*AGENTS, "all"], default="all")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.runs, list(AGENTS) if arguments.agent == "all" else [arguments.agent]))
