"""The default workspace image: whether this node's Docker engine has it, and building it from the
Containerfile's `workspace` target (one build at a time per node, its progress kept for whoever looks)."""

from __future__ import annotations

import asyncio
import io
import tarfile
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import structlog

from aicode.containers.runtime import ContainerError, ContainerRuntime
from aicode.errors import ConflictError

__all__ = ["BUILD_TARGET", "ImageBuild", "ImageBuilds", "ImageStatus"]

log = structlog.get_logger(__name__)

BUILD_TARGET = "workspace"
_LOG_LINES = 400  # progress lines kept per build: enough to read why a step failed


@dataclass(slots=True)
class ImageBuild:
    """One build of the image: running, succeeded or failed, with its progress so far."""

    image: str
    started_by: str
    started_at: datetime
    state: str = "running"  # running | succeeded | failed
    finished_at: datetime | None = None
    error: str | None = None
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=_LOG_LINES))
    line_count: int = 0  # every line ever added: a reader asks for what came after the count it has seen

    def add(self, text: str) -> None:
        for line in text.splitlines():
            self.lines.append(line)
            self.line_count += 1

    def since(self, seen: int) -> list[str]:
        """The lines after the first `seen` (as many as are still kept)."""
        new = self.line_count - seen
        return list(self.lines)[-new:] if new > 0 else []


@dataclass(frozen=True, slots=True)
class ImageStatus:
    image: str
    present: bool | None  # None: the engine could not be asked
    problem: str | None
    build: ImageBuild | None


class ImageBuilds:
    def __init__(self, runtime: ContainerRuntime, *, image: str, containerfile: Path) -> None:
        self._runtime = runtime
        self._image = image
        self._containerfile = containerfile
        self._current: ImageBuild | None = None
        self._task: asyncio.Task[None] | None = None

    async def status(self) -> ImageStatus:
        """Whether the engine has the default image, and the last build on this node (if any)."""
        try:
            present: bool | None = await self._runtime.image_id(self._image) is not None
            problem = None if present else (f"the image {self._image} is not on this server's Docker engine: "
                                            "build it (Admin → Build the workspace image, or `aicode image build`)")
        except ContainerError as exc:
            present, problem = None, f"the Docker engine could not be asked about {self._image}: {exc}"
        return ImageStatus(image=self._image, present=present, problem=problem, build=self._current)

    def start(self, by: str) -> ImageBuild:
        """Start building the image in the background; a 409 while a build is running."""
        if self._current is not None and self._current.state == "running":
            raise ConflictError(f"the image is being built already (started by {self._current.started_by})")
        if not self._containerfile.is_file():
            raise ConflictError(f"there is no Containerfile at {self._containerfile} (AICODE_CONTAINERFILE)")
        build = ImageBuild(image=self._image, started_by=by, started_at=datetime.now(UTC))
        self._current = build
        self._task = asyncio.create_task(self._run(build), name="image-build")
        return build

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self, build: ImageBuild) -> None:
        log.info("image.build_started", image=build.image, by=build.started_by)
        build.add(f"building the {BUILD_TARGET} target of {self._containerfile} as {build.image}")
        try:
            context = _context(self._containerfile)
            async for line in self._runtime.build_image(context, dockerfile=self._containerfile.name,
                                                        target=BUILD_TARGET, tag=build.image):
                build.add(line)
        except ContainerError as exc:
            step = next((line for line in reversed(build.lines) if line.startswith("Step ")), None)
            build.state, build.error = "failed", f"{exc} (at {step})" if step else str(exc)
            build.add(f"failed: {exc}")
        except asyncio.CancelledError:
            build.state, build.error = "failed", "the server stopped during the build"
            raise
        except Exception as exc:  # the build is someone's background work: it ends, with why, whatever happens
            log.exception("image.build_crashed")
            build.state, build.error = "failed", f"the build stopped unexpectedly: {type(exc).__name__}"
        else:
            build.state = "succeeded"
            build.add(f"built {build.image}")
        finally:
            build.finished_at = datetime.now(UTC)
            log.info("image.build_finished", image=build.image, state=build.state, error=build.error)


def _context(containerfile: Path) -> bytes:
    """The build context: the Containerfile alone (the workspace target copies nothing from the checkout)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.add(containerfile, arcname=containerfile.name)
    return buffer.getvalue()
