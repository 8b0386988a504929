"""Creates task containers, runs commands in them with their output streamed, and removes them."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiodocker
import aiohttp

from aicode.containers.engine import DockerEngine
from aicode.containers.policy import ContainerSpec, create_config
from aicode.errors import UnavailableError

__all__ = ["ContainerError", "ContainerRuntime", "ExecResult", "OutputChunk"]

STDOUT, STDERR = 1, 2


def _is_connection_failure(exc: aiodocker.DockerError) -> bool:
    # aiodocker reports a socket it cannot reach as a DockerError with a pseudo status of 900.
    return exc.status >= 900 or "Cannot connect to Docker" in str(exc.message)


class ContainerError(Exception):
    """A container could not be created or run; the message says what to do."""


@dataclass(frozen=True, slots=True)
class OutputChunk:
    stream: int
    data: bytes


@dataclass(slots=True)
class ExecResult:
    exit_code: int | None = None
    oom_killed: bool = False
    # The container itself had stopped (or was gone) when the process ended: killed from outside, or
    # its engine restarted. Then a SIGKILL'd process says nothing about its memory.
    container_stopped: bool = False


class LiveExec:
    """A process in a container whose stdin is open: lines go in with `send`, output comes out of `output`."""

    def __init__(self, runtime: ContainerRuntime, container_id: str, execution: Any, stream: Any,
                 result: ExecResult) -> None:
        self._runtime = runtime
        self._container_id = container_id
        self._execution = execution
        self._stream = stream
        self._result = result

    async def send(self, data: bytes) -> None:
        try:
            await self._stream.write_in(data)
        except (aiohttp.ClientError, OSError, RuntimeError) as exc:
            raise ContainerError(f"the agent's input is closed ({type(exc).__name__})") from None

    async def output(self) -> AsyncIterator[OutputChunk]:
        """stdout and stderr as they come, until the process exits; then `result` is filled."""
        try:
            while (message := await self._stream.read_out()) is not None:
                yield OutputChunk(stream=message.stream, data=message.data)
            info = await self._execution.inspect()
        except (aiohttp.ClientError, OSError) as exc:
            raise ContainerError(f"the connection to the agent broke ({type(exc).__name__})") from None
        except aiodocker.DockerError as exc:
            raise ContainerError(f"running the agent failed: {exc.message}") from None
        self._result.exit_code = info.get("ExitCode")
        self._result.oom_killed, self._result.container_stopped = await self._runtime.container_state(
            self._container_id)


class ContainerRuntime:
    """The aiodocker adapter for task containers."""

    def __init__(self, engine: DockerEngine) -> None:
        self._engine = engine

    async def start(self, spec: ContainerSpec) -> str:
        """Create and start a container; returns its id. Nothing is left behind on failure."""
        client = self._client()
        try:
            container = await client.containers.create(create_config(spec), name=spec.name)
        except (aiohttp.ClientError, OSError) as exc:
            raise ContainerError(self._engine.unreachable(exc).detail) from None
        except aiodocker.DockerError as exc:
            if _is_connection_failure(exc):
                raise ContainerError(self._engine.unreachable(exc).detail) from None
            if exc.status == 404:
                raise ContainerError(
                    f"image {spec.image!r} not found on the Docker engine: build it "
                    "(docker build --target workspace -t <tag> .) or set the workspace's image"
                ) from None
            raise ContainerError(f"could not create the container: {exc.message}") from None
        try:
            await container.start()
        except aiodocker.DockerError as exc:
            await self.remove(container.id)
            raise ContainerError(f"could not start the container: {exc.message}") from None
        return container.id

    async def run(
        self, container_id: str, argv: Sequence[str], env: Mapping[str, str], result: ExecResult
    ) -> AsyncIterator[OutputChunk]:
        """Run `argv` in the container, yielding its stdout/stderr as it comes; fills `result` at the end."""
        container = self._client().containers.container(container_id)
        try:
            execution = await container.exec(list(argv), stdout=True, stderr=True, environment=dict(env))
            async with execution.start(detach=False) as stream:
                while (message := await stream.read_out()) is not None:
                    yield OutputChunk(stream=message.stream, data=message.data)
            info = await execution.inspect()
        except (aiohttp.ClientError, OSError) as exc:
            raise ContainerError(self._engine.unreachable(exc).detail) from None
        except aiodocker.DockerError as exc:
            raise ContainerError(f"running the agent failed: {exc.message}") from None
        result.exit_code = info.get("ExitCode")
        result.oom_killed, result.container_stopped = await self.container_state(container_id)

    async def image_id(self, image: str) -> str | None:
        """The id of the image a tag names on the engine; None when the engine has no such image."""
        try:
            info = await self._client().images.inspect(image)
        except (aiohttp.ClientError, OSError) as exc:
            raise ContainerError(self._engine.unreachable(exc).detail) from None
        except aiodocker.DockerError as exc:
            if exc.status == 404:
                return None
            if _is_connection_failure(exc):
                raise ContainerError(self._engine.unreachable(exc).detail) from None
            raise ContainerError(f"could not inspect the image {image!r}: {exc.message}") from None
        return str(info.get("Id") or "") or None

    @contextlib.asynccontextmanager
    async def open(self, container_id: str, argv: Sequence[str], env: Mapping[str, str],
                   result: ExecResult) -> AsyncIterator[LiveExec]:
        """Start `argv` in the container with its stdin open, for a process that is talked to (a live agent
        session); `result` is filled once its output ends. Leaving the block closes the connection."""
        container = self._client().containers.container(container_id)
        try:
            execution = await container.exec(list(argv), stdout=True, stderr=True, stdin=True,
                                             environment=dict(env))
            stream = execution.start(detach=False)
            await stream.__aenter__()
        except (aiohttp.ClientError, OSError) as exc:
            raise ContainerError(self._engine.unreachable(exc).detail) from None
        except aiodocker.DockerError as exc:
            raise ContainerError(f"running the agent failed: {exc.message}") from None
        live = LiveExec(self, container_id, execution, stream, result)
        try:
            yield live
        finally:
            with contextlib.suppress(Exception):
                await stream.close()

    async def pid(self, container_id: str) -> int:
        """The host pid of the container's first process (it must be running)."""
        try:
            info = await self._client().containers.container(container_id).show()
        except aiodocker.DockerError as exc:
            raise ContainerError(f"could not inspect the container: {exc.message}") from None
        pid = int(info.get("State", {}).get("Pid") or 0)
        if pid <= 0:
            raise ContainerError("the container is not running")
        return pid

    async def kill(self, container_id: str) -> None:
        with contextlib.suppress(aiodocker.DockerError):
            await self._client().containers.container(container_id).kill(signal="SIGKILL")

    async def remove(self, container_id: str) -> None:
        """Remove the container whatever its state; a container already gone is fine."""
        with contextlib.suppress(aiodocker.DockerError):
            await self._client().containers.container(container_id).delete(force=True, v=True)

    async def list_ids(self, labels: Mapping[str, str]) -> list[str]:
        filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
        try:
            containers = await self._client().containers.list(all=True, filters=filters)
        except (aiohttp.ClientError, OSError) as exc:
            raise ContainerError(self._engine.unreachable(exc).detail) from None
        except aiodocker.DockerError as exc:
            if _is_connection_failure(exc):
                raise ContainerError(self._engine.unreachable(exc).detail) from None
            raise ContainerError(f"could not list containers: {exc.message}") from None
        return [c.id for c in containers]

    async def container_state(self, container_id: str) -> tuple[bool, bool]:
        """(OOM-killed, stopped) of the container after a process in it ended."""
        try:
            info = await self._client().containers.container(container_id).show()
        except (aiodocker.DockerError, aiohttp.ClientError, OSError, ContainerError):
            return False, True
        state = info.get("State", {})
        return bool(state.get("OOMKilled")), not state.get("Running", False)

    async def build_image(self, context_tar: bytes, *, dockerfile: str, target: str, tag: str
                          ) -> AsyncIterator[str]:
        """Build `target` of `dockerfile` in the tar'ed build context as `tag`, yielding the engine's progress
        lines as they come; a failed build raises ContainerError with the engine's message."""
        # aiodocker's images.build() has no `target`: the engine's build endpoint is called directly.
        params = {"t": tag, "dockerfile": dockerfile, "target": target, "rm": "1", "forcerm": "1"}
        try:
            async with self._client()._query("build", "POST", params=params, data=context_tar,
                                             headers={"Content-Type": "application/x-tar"},
                                             timeout=aiohttp.ClientTimeout()) as response:
                async for raw in response.content:
                    line = raw.decode(errors="replace").strip()
                    if not line:
                        continue
                    try:
                        item = json.loads(line)
                    except ValueError:
                        yield line
                        continue
                    if not isinstance(item, dict):
                        continue
                    if item.get("error"):
                        raise ContainerError(str(item.get("error")).strip())
                    text = item.get("stream") or item.get("status") or ""
                    if item.get("progress"):
                        text = f"{text} {item['progress']}"
                    if isinstance(text, str) and text.strip():
                        yield text.rstrip()
        except (aiohttp.ClientError, OSError) as exc:
            raise ContainerError(self._engine.unreachable(exc).detail) from None
        except aiodocker.DockerError as exc:
            if _is_connection_failure(exc):
                raise ContainerError(self._engine.unreachable(exc).detail) from None
            raise ContainerError(f"the image could not be built: {exc.message}") from None

    def _client(self) -> aiodocker.Docker:
        try:
            return self._engine.client
        except UnavailableError as exc:
            raise ContainerError(exc.detail) from None
