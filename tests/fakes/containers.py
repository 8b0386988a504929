"""Run a command in a hardened test container through aiodocker and collect its output.

A stand-in for the app's container runtime in tests of the agent doubles:
stdout and stderr are kept apart (attach before start, so nothing is missed),
split into lines as they arrive, and the container is always removed.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiodocker

__all__ = ["ContainerOutput", "RunningContainer", "container_config", "json_lines", "run_container",
           "started_container"]

TEST_LABEL = "org.aicode.test"
AGENT_UID = "1000"


def container_config(image: str, cmd: Sequence[str], *, env: Mapping[str, str] | None = None,
                     binds: Mapping[str, str] | None = None, network_mode: str = "none",
                     user: str = AGENT_UID, workdir: str = "/workspace", read_only: bool = True,
                     tmpfs: Mapping[str, str] | None = None, stdin: bool = False,
                     memory: int = 1024 * 1024 * 1024, pids_limit: int = 512) -> dict[str, Any]:
    """A container config with the server's hardening: no capabilities, no-new-privileges,
    read-only root with a tmpfs /tmp, memory and pids limits, a non-root user.

    `binds` maps host paths to container paths (read-write; add ``:ro`` to the container path
    for read-only)."""
    mounts = [f"{host}:{inside}" for host, inside in (binds or {}).items()]
    return {
        "Image": image,
        "Cmd": list(cmd),
        "User": user,
        "WorkingDir": workdir,
        "Env": [f"{k}={v}" for k, v in (env or {}).items()],
        "Labels": {TEST_LABEL: "fakes"},
        "AttachStdout": True,
        "AttachStderr": True,
        "AttachStdin": stdin,
        "OpenStdin": stdin,
        "StdinOnce": stdin,
        "Tty": False,
        "HostConfig": {
            "NetworkMode": network_mode,
            "Binds": mounts,
            "ReadonlyRootfs": read_only,
            "Tmpfs": dict(tmpfs) if tmpfs is not None else {"/tmp": "rw,nosuid,nodev,size=256m"},
            "CapDrop": ["ALL"],
            "SecurityOpt": ["no-new-privileges"],
            "Memory": memory,
            "PidsLimit": pids_limit,
        },
    }


def json_lines(lines: Sequence[str]) -> list[dict[str, Any]]:
    """The lines that are JSON objects, parsed (other lines are skipped, as a client must)."""
    parsed = []
    for line in lines:
        if not line.startswith("{"):
            continue
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            parsed.append(value)
    return parsed


@dataclass
class ContainerOutput:
    """What a finished container printed, and how it ended."""

    exit_code: int
    stdout_lines: list[str]
    stderr_lines: list[str]
    duration_s: float

    @property
    def stdout(self) -> str:
        return "".join(line + "\n" for line in self.stdout_lines)

    @property
    def stderr(self) -> str:
        return "".join(line + "\n" for line in self.stderr_lines)

    def events(self, type: str | None = None, subtype: str | None = None) -> list[dict[str, Any]]:  # noqa: A002
        """Parsed JSON stdout lines, optionally only those of one type (and subtype)."""
        return [e for e in json_lines(self.stdout_lines)
                if (type is None or e.get("type") == type) and (subtype is None or e.get("subtype") == subtype)]

    @property
    def result(self) -> dict[str, Any] | None:
        """The last `result` line, if any."""
        results = self.events("result")
        return results[-1] if results else None


@dataclass
class RunningContainer:
    """A started container whose output is being collected in the background."""

    container: aiodocker.containers.DockerContainer
    stream: Any
    started: float = field(default_factory=time.monotonic)
    stdout_lines: list[str] = field(default_factory=list)
    stderr_lines: list[str] = field(default_factory=list)
    _new_line: asyncio.Event = field(default_factory=asyncio.Event)
    _reader: asyncio.Task[None] | None = None

    async def _read(self) -> None:
        pending = {1: b"", 2: b""}
        while (message := await self.stream.read_out()) is not None:
            if message.stream not in pending:
                continue
            data = pending[message.stream] + message.data
            *complete, pending[message.stream] = data.split(b"\n")
            self._add(message.stream, complete)
        self._add(1, [pending[1]] if pending[1] else [])
        self._add(2, [pending[2]] if pending[2] else [])

    def _add(self, stream: int, lines: list[bytes]) -> None:
        if lines:
            target = self.stdout_lines if stream == 1 else self.stderr_lines
            target.extend(line.decode("utf-8", errors="replace") for line in lines)
            self._new_line.set()

    async def write_stdin(self, data: bytes, close: bool = False) -> None:
        """Send bytes to the container's stdin (created with ``stdin=True``); `close` sends EOF."""
        await self.stream.write_in(data)
        if close:
            # Half-close: the container sees EOF on stdin while we keep reading its output.
            self.stream._resp.connection.transport.write_eof()

    async def wait_for_line(self, predicate: Any, timeout: float = 30.0) -> str:
        """The first stdout line (seen so far or to come) for which predicate(line) is true."""
        seen = 0
        async with asyncio.timeout(timeout):
            while True:
                for line in self.stdout_lines[seen:]:
                    if predicate(line):
                        return line
                seen = len(self.stdout_lines)
                if self._reader is not None and self._reader.done():
                    raise EOFError("the container's output ended without such a line")
                self._new_line.clear()
                await self._new_line.wait()

    async def wait(self, timeout: float = 60.0) -> ContainerOutput:
        """Wait for the container to exit and all its output to be read."""
        async with asyncio.timeout(timeout):
            status = await self.container.wait()
            assert self._reader is not None
            await self._reader
        return ContainerOutput(status["StatusCode"], self.stdout_lines, self.stderr_lines,
                               time.monotonic() - self.started)

    async def kill(self, signal: str = "SIGTERM") -> None:
        await self.container.kill(signal=signal)


@asynccontextmanager
async def started_container(docker: aiodocker.Docker, config: Mapping[str, Any]) -> AsyncIterator[RunningContainer]:
    """Create, attach to and start a container; kill and remove it on the way out."""
    container = await docker.containers.create(dict(config))
    try:
        stream = container.attach(stdout=True, stderr=True, stdin=bool(config.get("OpenStdin")))
        async with stream:
            running = RunningContainer(container, stream)
            running._reader = asyncio.create_task(running._read())
            # Wake wait_for_line when the output ends too.
            running._reader.add_done_callback(lambda _task: running._new_line.set())
            try:
                await container.start()
                yield running
            finally:
                if not running._reader.done():
                    await _kill_quietly(container)
                    running._reader.cancel()
                await asyncio.gather(running._reader, return_exceptions=True)
    finally:
        await container.delete(force=True)


async def _kill_quietly(container: aiodocker.containers.DockerContainer) -> None:
    try:
        await container.kill()
    except aiodocker.DockerError:
        pass  # it has exited already


async def run_container(docker: aiodocker.Docker, config: Mapping[str, Any], *, timeout: float = 60.0,
                        stdin: bytes | None = None) -> ContainerOutput:
    """Run a container to completion (killed after `timeout` s) and return its output."""
    if stdin is not None:
        config = {**config, "AttachStdin": True, "OpenStdin": True, "StdinOnce": True}
    async with started_container(docker, config) as running:
        if stdin is not None:
            await running.write_stdin(stdin, close=True)
        return await running.wait(timeout)
