"""The git worker: libgit2 work on the server's git store, in separate processes that are not root.

Every libgit2 call on the store (mirrors, task branches, diffs, patches) runs here, not in the
server process: a libgit2 crash or stall on odd repository data costs one worker, never the
server, and where the server runs as root the worker does not. A worker starts as a fork of the
server's forkserver and, when root, enters a private mount namespace in which the git store is
bind-mounted on a spare folder (the data dir's own path stays unreadable to the git uid, 0700),
then drops to the git uid/gid for good. Only the store is reachable through a path it can
traverse; the server's secret key, database and the agents' folders are not.

Arguments of type `StorePath` are resolved inside the worker to where it sees the store.
"""

from __future__ import annotations

import asyncio
import ctypes
import multiprocessing
import os
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import structlog

from aicode.storage.identity import HostIdentities

__all__ = ["GitWorker", "GitWorkerError", "StorePath", "store_root"]

log = structlog.get_logger(__name__)

T = TypeVar("T")

# Modules the worker needs, imported before it drops privileges: afterwards it may not be able
# to read the interpreter's files (a Python under /root, say).
_PRELOAD = ("pygit2", "aicode.git.checkout", "aicode.git.mirror", "aicode.git.patches", "aicode.git.push",
            "aicode.git.rebase", "aicode.git.transfer", "subprocess", "tempfile", "zlib", "hashlib", "json", "traceback", "linecache")
# Folders the store may be mounted over in the worker's private namespace, first that exists wins.
_MOUNT_POINTS = ("/mnt", "/media", "/srv")
_CLONE_NEWNS = 0x00020000
_MS_BIND = 4096
_MS_REC = 16384
_MS_PRIVATE = 1 << 18

# A remote that accepts a connection and then says nothing must fail its fetch, not hold a worker.
_CONNECT_TIMEOUT_MS = 15_000
_READ_TIMEOUT_MS = 120_000

_root: Path | None = None
_NO_CONFIG = "/nonexistent/aicode-no-git-config"


class GitWorkerError(Exception):
    """The git worker died or could not start; the message says what to do."""


@dataclass(frozen=True, slots=True)
class StorePath:
    """A path inside the git store, relative to its root."""

    relative: str

    def __post_init__(self) -> None:
        parts = Path(self.relative).parts
        if Path(self.relative).is_absolute() or ".." in parts:
            raise ValueError(f"not a path inside the git store: {self.relative!r}")


def store_root() -> Path:
    """Where the current process sees the git store (set in each worker by its initializer)."""
    if _root is None:
        raise RuntimeError("not in a git worker")
    return _root


def _mount_point() -> Path | None:
    """A folder the worker may cover: not one its interpreter or aicode's code lives under."""
    needed = [Path(sys.prefix), Path(sys.base_prefix), Path(__file__).resolve().parent.parent]
    for candidate in map(Path, _MOUNT_POINTS):
        if candidate.is_dir() and not candidate.is_symlink() and not any(
            p == candidate or p.is_relative_to(candidate) for p in needed
        ):
            return candidate
    return None


def _bind_store(git_root: Path) -> Path | None:
    """In a private mount namespace, show the store at a folder every uid can reach; None if impossible."""
    target = _mount_point()
    if target is None:
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    steps: tuple[Callable[[], int], ...] = (
        lambda: libc.unshare(_CLONE_NEWNS),
        # Private: nothing mounted here shows in the server's namespace, and the reverse.
        lambda: libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None),
        lambda: libc.mount(os.fsencode(git_root), os.fsencode(target), None, _MS_BIND, None),
    )
    for step in steps:
        if step() != 0:
            return None
    return target


def _enter(git_root: str, uid: int, gid: int) -> None:
    """Worker initializer: preload, see the store, stop being root."""
    global _root
    import importlib

    for name in _PRELOAD:
        importlib.import_module(name)
    import pygit2

    pygit2.settings.server_connect_timeout = _CONNECT_TIMEOUT_MS
    pygit2.settings.server_timeout = _READ_TIMEOUT_MS
    # The store's repositories are the server's alone: no user's or system git config applies to them,
    # and libgit2 must not even look (a ~/.gitconfig of root's is one the git uid may not stat, which
    # libgit2 takes for an error).
    for level in (pygit2.enums.ConfigLevel.SYSTEM, pygit2.enums.ConfigLevel.XDG, pygit2.enums.ConfigLevel.GLOBAL,
                  pygit2.enums.ConfigLevel.PROGRAMDATA):
        pygit2.settings.search_path[level] = _NO_CONFIG
    root = Path(git_root)
    if os.geteuid() == 0:
        mounted = _bind_store(root)
        if mounted is not None:
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            root = mounted
        else:
            log.warning("git.worker_stays_root", git_root=git_root,
                        reason="no private mount namespace (needs CAP_SYS_ADMIN) or no spare folder to mount on")
            # Still root: repositories belong to the git uid, which libgit2 would refuse to open.
            pygit2.option(pygit2.enums.Option.SET_OWNER_VALIDATION, 0)
    os.chdir(root)
    _root = root


def _call(fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    root = store_root()
    resolved = [root / a.relative if isinstance(a, StorePath) else a for a in args]
    return fn(*resolved)


def _whoami() -> tuple[int, int, str]:
    return os.geteuid(), os.getegid(), str(store_root())


class GitWorker:
    """A small pool of git worker processes; `run` sends one call to a free one."""

    def __init__(self, git_root: Path, ids: HostIdentities, *, processes: int = 2, abandon_on_close: bool = False
                 ) -> None:
        self._git_root = git_root
        self._ids = ids
        self._processes = processes
        # For network fetches: at shutdown a fetch still waiting on a remote is ended, not waited for.
        self._abandon_on_close = abandon_on_close
        self._pool: ProcessPoolExecutor | None = None

    def _new_pool(self) -> ProcessPoolExecutor:
        context = multiprocessing.get_context("forkserver")
        return ProcessPoolExecutor(
            max_workers=self._processes, mp_context=context, initializer=_enter,
            initargs=(str(self._git_root), self._ids.git_uid, self._ids.git_gid),
        )

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in a worker (fn must be a module-level function); its exceptions are re-raised here."""
        if self._pool is None:
            self._pool = self._new_pool()
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, _call, fn, args)
        except BrokenProcessPool:
            # A worker died (a crash in libgit2, or killed): start afresh for the next call.
            broken, self._pool = self._pool, None
            broken.shutdown(wait=False, cancel_futures=True)
            log.error("git.worker_died", function=getattr(fn, "__name__", str(fn)))
            raise GitWorkerError("the git worker process died while working on this; try again") from None

    async def identity(self) -> tuple[int, int, str]:
        """(euid, egid, store root) as a worker sees them: for start-up checks and tests."""
        return await self.run(_whoami)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if self._abandon_on_close:
            # ProcessPoolExecutor has no way to stop work under way (until Python 3.14): end the processes.
            for process in list(getattr(pool, "_processes", {}).values()):
                process.terminate()
        await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)
