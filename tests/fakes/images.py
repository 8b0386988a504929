"""The fake-agent workspace image: the test workspace image with fake_claude.py as `claude`.

Built offline (``FROM`` a local image needs no registry) with an in-memory build
context, through the legacy builder as well as BuildKit, and cached by a tag that
names its inputs, so a second test run reuses it. Test processes running at once
(pytest-xdist workers, or two runs) build it one at a time: the others wait on a
lock file and then find the tag made.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import io
import os
import tarfile
import tempfile
import weakref
from collections.abc import AsyncIterator
from pathlib import Path

import aiodocker

__all__ = ["DEFAULT_BASE_IMAGE", "FAKE_CLAUDE", "ensure_fake_image", "fake_image_tag", "wait_for_image"]

FAKE_CLAUDE = Path(__file__).with_name("fake_claude.py")
DEFAULT_BASE_IMAGE = os.environ.get("AICODE_TEST_IMAGE", "aicode-workspace:test")
FAKE_REPOSITORY = "aicode-workspace"
LABEL = "org.aicode.test-image.fake-claude"

# One build at a time per event loop: concurrent tests asking for the image wait for it.
_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()
# ... and per machine: test processes running at once take turns on this file.
BUILD_LOCK = Path(tempfile.gettempdir()) / "aicode-test-fake-image.lock"


async def _image_id(docker: aiodocker.Docker, name: str) -> str | None:
    try:
        return (await docker.images.inspect(name))["Id"]
    except aiodocker.DockerError as exc:
        if exc.status == 404:
            return None
        raise


async def wait_for_image(docker: aiodocker.Docker, name: str = DEFAULT_BASE_IMAGE, timeout: float = 600) -> str:
    """The id of image `name`, waiting up to `timeout` s for someone else's build to tag it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (image_id := await _image_id(docker, name)) is None:
        if loop.time() >= deadline:
            raise LookupError(f"image {name} not found after {timeout:.0f} s - build it with `bash tests/image/build.sh`")
        await asyncio.sleep(2)
    return image_id


def fake_image_tag(base_image_id: str, script: bytes | None = None) -> str:
    """``aicode-workspace:fake-<12 hex>``: sha256 of fake_claude.py + the base image id."""
    digest = hashlib.sha256((script if script is not None else FAKE_CLAUDE.read_bytes()) + base_image_id.encode())
    return f"{FAKE_REPOSITORY}:fake-{digest.hexdigest()[:12]}"


def _build_context(base: str, script: bytes, digest: str) -> io.BytesIO:
    # COPY keeps the mode and owner recorded in the tar (the legacy builder has no --chmod).
    dockerfile = f"FROM {base}\nCOPY claude /usr/local/bin/claude\nLABEL {LABEL}={digest}\n".encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data, mode in (("Dockerfile", dockerfile, 0o644), ("claude", script, 0o755)):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid = len(data), mode, 0, 0
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


@contextlib.asynccontextmanager
async def _machine_lock() -> AsyncIterator[None]:
    """An exclusive lock on BUILD_LOCK, shared by every process on this machine (released if one dies)."""
    fd = os.open(BUILD_LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the file releases the lock


async def ensure_fake_image(docker: aiodocker.Docker, base: str = DEFAULT_BASE_IMAGE) -> str:
    """The tag of an image like `base` whose /usr/local/bin/claude is fake_claude.py; built if missing."""
    lock = _locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())
    async with lock, _machine_lock():
        base_id = await _image_id(docker, base)
        if base_id is None:
            raise LookupError(f"base image {base} not found - build it with `bash tests/image/build.sh`")
        script = FAKE_CLAUDE.read_bytes()
        tag = fake_image_tag(base_id, script)
        if await _image_id(docker, tag) is not None:
            return tag
        context = _build_context(base, script, tag.rpartition("-")[2])
        await docker.images.build(fileobj=context, encoding="identity", tag=tag, rm=True, forcerm=True,
                                  labels={"org.aicode.test": "fakes"})
        if await _image_id(docker, tag) is None:
            raise RuntimeError(f"docker build reported success but {tag} does not exist")
        return tag
