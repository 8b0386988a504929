"""Which agent CLIs an image carries, and in which versions: found by running them, once per image.

The answer is kept per image id, so a rebuilt image (a new id under the same tag) is looked at again,
and an image the engine does not have is said up front rather than by a failed task.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass

import structlog

from aicode.agents.registry import AGENTS, driver_for
from aicode.containers.policy import ContainerSpec
from aicode.containers.runtime import ContainerError, ContainerRuntime, ExecResult

__all__ = ["AgentCatalog", "ImageAgents"]

log = structlog.get_logger(__name__)

# Each CLI's version, or "-" when it is not on PATH. `timeout` bounds a CLI that hangs at start-up.
_PROBE = """\
for cli in "$@"; do
  if command -v "$cli" >/dev/null 2>&1; then
    v=$(timeout 30 "$cli" --version 2>/dev/null </dev/null | head -n 1)
    echo "$cli=${v:-?}"
  else
    echo "$cli=-"
  fi
done
"""
_VERSION = re.compile(r"\d+\.\d+(?:\.\d+)?(?:[-.+][0-9A-Za-z.]+)?")
_PROBE_TIMEOUT_S = 90.0


@dataclass(frozen=True, slots=True)
class ImageAgents:
    """What an image holds: per agent, its version (None: the CLI is not there); or why it could not be told."""

    image: str
    versions: dict[str, str | None]
    problem: str | None = None  # the image is missing, or the engine unreachable


class AgentCatalog:
    def __init__(self, runtime: ContainerRuntime, *, default_image: str, container_user: str, server_id: str) -> None:
        self._runtime = runtime
        self.default_image = default_image
        self._user = container_user
        self._server_id = server_id
        self._found: dict[str, dict[str, str | None]] = {}  # by image id
        self._locks: dict[str, asyncio.Lock] = {}

    async def agents_in(self, image: str) -> ImageAgents:
        """The agents `image` carries (probed the first time an image id is asked about)."""
        try:
            image_id = await self._runtime.image_id(image)
        except ContainerError as exc:
            return ImageAgents(image, {}, f"the Docker engine could not be asked about the image: {exc}")
        if image_id is None:
            return ImageAgents(image, {}, f"the image {image!r} is not on this server's Docker engine: build it with "
                               f"`docker build -f Containerfile --target workspace -t {image} .`")
        lock = self._locks.setdefault(image_id, asyncio.Lock())
        async with lock:
            if image_id not in self._found:
                try:
                    self._found[image_id] = await self._probe(image)
                except ContainerError as exc:
                    return ImageAgents(image, {}, f"the agents in {image!r} could not be listed: {exc}")
        return ImageAgents(image, self._found[image_id])

    async def _probe(self, image: str) -> dict[str, str | None]:
        executables = {driver_for(name).executable: name for name in AGENTS}
        spec = ContainerSpec(image=image, name=f"aicode-probe-{uuid.uuid4().hex[:12]}", user=self._user,
                             labels={"aicode.server": self._server_id, "aicode.probe": "agents"}, network="none",
                             workdir="/tmp")
        container = await self._runtime.start(spec)
        output = bytearray()
        try:
            # HOME and the CLIs' state dirs on the container's tmpfs: the root filesystem is read-only.
            env = {"HOME": "/tmp", "CODEX_HOME": "/tmp/codex", "GEMINI_CLI_HOME": "/tmp"}
            argv = ["sh", "-c", f"mkdir -p /tmp/codex; {_PROBE}", "aicode-probe", *executables]
            async with asyncio.timeout(_PROBE_TIMEOUT_S):
                async for chunk in self._runtime.run(container, argv, env, ExecResult()):
                    if chunk.stream == 1:
                        output.extend(chunk.data[: 64 * 1024])
        except TimeoutError:
            raise ContainerError("the version check did not finish in time") from None
        finally:
            await self._runtime.remove(container)
        versions: dict[str, str | None] = dict.fromkeys(AGENTS)
        for line in output.decode(errors="replace").splitlines():
            executable, _, printed = line.partition("=")
            if executable in executables and printed != "-":
                match = _VERSION.search(printed)
                versions[executables[executable]] = match.group(0) if match else printed.strip()[:40] or "unknown"
        log.info("agents.probed", image=image, versions=versions)
        return versions
