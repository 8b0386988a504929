"""The agent's working copy as the server sees it: files read as data, never as a git repository.

Everything under a task's checkout was written by the agent, so it is hostile input. The server
never opens the checkout's `.git` (config, `core.worktree`, gitfiles, alternates, hooks,
`info/exclude`, attribute filters: none of it is read). It walks the files itself, from a folder
handle, with the AGENT's filesystem identity (`fs_identity`), never following a symlink
(`O_NOFOLLOW` at every step, symlinks recorded as links), skipping anything that is not a regular
file, a folder or a symlink (a FIFO cannot stall it), and honouring only the `.gitignore` files
of the worktree (read the same way). File contents become git blobs written as loose objects into
the workspace mirror with the git store's identity; the tree and commit are then made by the git
worker (`aicode.git.checkout.commit_entries`). Blocking: run in a thread.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import secrets
import shutil
import stat
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pathspec

from aicode.storage.identity import HostIdentities, fs_identity

__all__ = [
    "MAX_FILE_BYTES",
    "CachedEntry",
    "TreeEntry",
    "WorktreeScan",
    "hand_over_checkout",
    "load_cache",
    "save_cache",
    "scan_worktree",
]

MAX_FILE_BYTES = 100 * 1024 * 1024  # as GitHub: a larger file could not be pushed anyway
_MAX_IGNORE_BYTES = 1024 * 1024
# Deeper folders are left out (and reported): the walk recurses, and holds a handle per level.
MAX_DEPTH = 200
MODE_FILE, MODE_EXECUTABLE, MODE_LINK, MODE_GITLINK = 0o100644, 0o100755, 0o120000, 0o160000
# A file changed within this long before the scan may change again within the same timestamp
# tick without its ctime moving: such entries are re-read next time rather than trusted.
_RACY_NS = 1_000_000_000
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


@dataclass(frozen=True, slots=True)
class TreeEntry:
    """One file of a snapshot: `mode` as git writes it, `oid` the hex id of its blob (or gitlink)."""

    path: str
    mode: int
    oid: str


@dataclass(frozen=True, slots=True)
class CachedEntry:
    """What the last snapshot recorded for a path; `signature` None when it must be re-read."""

    mode: int
    oid: str
    signature: tuple[int, int, int, int] | None = None


@dataclass(slots=True)
class WorktreeScan:
    entries: list[TreeEntry] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why), for the task's feed
    cache: dict[str, CachedEntry] = field(default_factory=dict)


def _signature(st: os.stat_result) -> tuple[int, int, int, int]:
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class _LooseObjects:
    """Writes blobs into a git objects folder, through a handle, as the git store's identity."""

    def __init__(self, objects_fd: int, ids: HostIdentities) -> None:
        self._fd = objects_fd
        self._ids = ids

    def store(self, data: bytes) -> str:
        header = b"blob %d\0" % len(data)
        oid = hashlib.sha1(header + data, usedforsecurity=False).hexdigest()
        with fs_identity(self._ids.git_uid, self._ids.git_gid):
            self._write(oid, header, data)
        return oid

    def _write(self, oid: str, header: bytes, data: bytes) -> None:
        folder, name = oid[:2], oid[2:]
        try:
            os.stat(f"{folder}/{name}", dir_fd=self._fd, follow_symlinks=False)
            return  # already there: objects are named by their content
        except FileNotFoundError:
            pass
        try:
            os.mkdir(folder, 0o755, dir_fd=self._fd)
        except FileExistsError:
            pass
        folder_fd = os.open(folder, _DIR_FLAGS, dir_fd=self._fd)
        try:
            temporary = f"tmp_obj_{secrets.token_hex(8)}"
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o444,
                         dir_fd=folder_fd)
            with os.fdopen(fd, "wb") as out:
                packer = zlib.compressobj()
                out.write(packer.compress(header))
                out.write(packer.compress(data))
                out.write(packer.flush())
            # Atomic, as git does it: a reader sees the whole object or none.
            os.rename(temporary, name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
        finally:
            os.close(folder_fd)


class _Scanner:
    def __init__(self, objects: _LooseObjects, previous: dict[str, CachedEntry], started_ns: int) -> None:
        self._objects = objects
        self._previous = previous
        self._started_ns = started_ns
        # Folders that hold a path of the previous snapshot: tracked files in them are kept even
        # when a .gitignore now matches them, as git keeps tracked files.
        self._tracked_dirs = {path.rsplit("/", i)[0] + "/" for path in previous for i in range(1, path.count("/") + 1)}
        self._sorted_previous = sorted(previous)
        self.scan = WorktreeScan()

    def walk(self, fd: int, prefix: str, ignores: list[tuple[str, pathspec.GitIgnoreSpec]]) -> None:
        spec = _read_ignore(fd)
        if spec is not None:
            ignores = [*ignores, (prefix, spec)]
        try:
            names = sorted(os.listdir(fd))
        except OSError as exc:
            self._skip(prefix or ".", f"folder not readable ({exc.strerror})", folder=True)
            return
        for name in names:
            # The agent's own git data, at any depth: never read, never committed (git refuses
            # `.git` in trees in any letter case).
            if name.lower() == ".git":
                continue
            path = prefix + name
            if not _utf8(name):
                self.scan.skipped.append((path.encode("utf-8", "replace").decode(), "name is not valid UTF-8"))
                continue
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except OSError as exc:
                self._skip(path, f"not readable ({exc.strerror})")
                continue
            self._entry(fd, name, path, st, ignores)

    def _entry(self, fd: int, name: str, path: str, st: os.stat_result,
               ignores: list[tuple[str, pathspec.GitIgnoreSpec]]) -> None:
        previous = self._previous.get(path)
        if stat.S_ISDIR(st.st_mode):
            if previous is not None and previous.mode == MODE_GITLINK:
                self._add(path, previous, None)  # a submodule's folder: its commit stays as it was
            elif path + "/" in self._tracked_dirs or not _ignored(path + "/", ignores):
                self._folder(fd, name, path, ignores)
        elif stat.S_ISLNK(st.st_mode) or stat.S_ISREG(st.st_mode):
            if previous is None and _ignored(path, ignores):
                return
            if stat.S_ISLNK(st.st_mode):
                self._link(fd, name, path)
            else:
                self._file(fd, name, path, st, previous)
        else:
            self._skip(path, "not a regular file, folder or symlink")

    def _folder(self, fd: int, name: str, path: str, ignores: list[tuple[str, pathspec.GitIgnoreSpec]]) -> None:
        if path.count("/") >= MAX_DEPTH:
            self._skip(path, f"nested deeper than {MAX_DEPTH} folders", folder=True)
            return
        try:
            sub = os.open(name, _DIR_FLAGS, dir_fd=fd)
        except OSError as exc:
            self._skip(path, f"folder not readable ({exc.strerror})", folder=True)
            return
        try:
            self.walk(sub, path + "/", ignores)
        finally:
            os.close(sub)

    def _link(self, fd: int, name: str, path: str) -> None:
        try:
            target = os.readlink(os.fsencode(name), dir_fd=fd)
        except OSError as exc:
            self._skip(path, f"symlink not readable ({exc.strerror})")
            return
        self._add(path, CachedEntry(MODE_LINK, self._objects.store(target)), None)

    def _file(self, fd: int, name: str, path: str, st: os.stat_result, previous: CachedEntry | None) -> None:
        mode = MODE_EXECUTABLE if st.st_mode & stat.S_IXUSR else MODE_FILE
        signature = _signature(st)
        if previous is not None and previous.signature == signature and previous.mode == mode:
            self._add(path, previous, signature)
            return
        if st.st_size > MAX_FILE_BYTES:
            self._skip(path, f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
            return
        try:
            data = _read_regular(fd, name, MAX_FILE_BYTES)
        except OSError as exc:
            self._skip(path, f"not readable ({exc.strerror})")
            return
        if data is None:
            self._skip(path, f"not a regular file, or larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
            return
        self._add(path, CachedEntry(mode, self._objects.store(data)), signature)

    def _skip(self, path: str, why: str, *, folder: bool = False) -> None:
        """Leave `path` out of this snapshot; what the last one had there is kept, so it is not deleted."""
        if path == ".":
            kept = self._sorted_previous
        elif folder:
            start = bisect.bisect_left(self._sorted_previous, path + "/")
            end = bisect.bisect_left(self._sorted_previous, path + "0")  # "0" sorts right after "/"
            kept = self._sorted_previous[start:end]
        else:
            kept = [path] if path in self._previous else []
        for previous in kept:
            self._add(previous, self._previous[previous], None)
        self.scan.skipped.append((path, f"{why}; its last committed version is kept" if kept else why))

    def _add(self, path: str, entry: CachedEntry, signature: tuple[int, int, int, int] | None) -> None:
        self.scan.entries.append(TreeEntry(path, entry.mode, entry.oid))
        trusted = signature is not None and signature[3] < self._started_ns - _RACY_NS
        self.scan.cache[path] = CachedEntry(entry.mode, entry.oid, signature if trusted else None)


def _read_regular(fd: int, name: str, limit: int) -> bytes | None:
    """The file's bytes, or None if it is not a regular file (swapped since the stat) or over `limit`."""
    file_fd = os.open(name, _FILE_FLAGS, dir_fd=fd)
    try:
        if not stat.S_ISREG(os.fstat(file_fd).st_mode):
            return None
        os.set_blocking(file_fd, True)
        chunks, size = [], 0
        while chunk := os.read(file_fd, min(1 << 20, limit + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                return None
        return b"".join(chunks)
    finally:
        os.close(file_fd)


def _read_ignore(fd: int) -> pathspec.GitIgnoreSpec | None:
    """The folder's `.gitignore`, if it is a regular file (a symlinked one is not followed, as in git)."""
    try:
        data = _read_regular(fd, ".gitignore", _MAX_IGNORE_BYTES)
    except OSError:
        return None
    if not data:
        return None
    return pathspec.GitIgnoreSpec.from_lines(data.decode("utf-8", "replace").splitlines())


def _ignored(path: str, ignores: list[tuple[str, pathspec.GitIgnoreSpec]]) -> bool:
    """git's rule: the deepest .gitignore with a matching pattern decides, its last match wins."""
    for prefix, spec in reversed(ignores):
        verdict = spec.check_file(path[len(prefix):]).include
        if verdict is not None:
            return verdict
    return False


def scan_worktree(checkout: Path, objects_dir: Path, ids: HostIdentities,
                  previous: dict[str, CachedEntry]) -> WorktreeScan:
    """Every committable file of the working copy as tree entries, its blobs stored in `objects_dir`."""
    # Opened as the server: the folders above the checkout are not the agent's to traverse.
    root_fd = os.open(checkout, _DIR_FLAGS)
    objects_fd = os.open(objects_dir, _DIR_FLAGS)
    try:
        scanner = _Scanner(_LooseObjects(objects_fd, ids), previous, time.time_ns())
        with fs_identity(ids.agent_uid, ids.agent_gid):
            scanner.walk(root_fd, "", [])
        return scanner.scan
    finally:
        os.close(root_fd)
        os.close(objects_fd)


def hand_over_checkout(made: Path, checkout: Path, ids: HostIdentities, entries: list[TreeEntry]
                       ) -> dict[str, CachedEntry]:
    """Move a working copy the git worker made into the task's (empty) checkout, give it to the agent,
    and return the stat cache of its files. Runs before any agent process has run in the checkout."""
    for existing in os.listdir(checkout):  # a first turn that failed half-way left these
        target = checkout / existing
        shutil.rmtree(target) if target.is_dir() and not target.is_symlink() else target.unlink()
    for name in os.listdir(made):
        os.rename(made / name, checkout / name)
    made.rmdir()
    if os.geteuid() == 0:
        for root, dirs, files in os.walk(checkout):
            for name in dirs + files:
                os.lchown(os.path.join(root, name), ids.agent_uid, ids.agent_gid)
    cache = {}
    for entry in entries:
        signature = None
        if entry.mode in (MODE_FILE, MODE_EXECUTABLE):
            st = os.lstat(checkout / entry.path)
            signature = _signature(st) if stat.S_ISREG(st.st_mode) else None
        cache[entry.path] = CachedEntry(entry.mode, entry.oid, signature)
    return cache


def load_cache(path: Path) -> dict[str, CachedEntry]:
    """The stat cache the last snapshot saved; empty when there is none or it is unreadable."""
    try:
        raw = json.loads(path.read_text())
        return {p: CachedEntry(int(e[0]), str(e[1]), tuple(e[2]) if e[2] else None) for p, e in raw.items()}
    except (OSError, ValueError, TypeError, IndexError, KeyError):
        return {}


def save_cache(path: Path, cache: dict[str, CachedEntry]) -> None:
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps({p: [e.mode, e.oid, e.signature] for p, e in cache.items()}))
    os.replace(temporary, path)
