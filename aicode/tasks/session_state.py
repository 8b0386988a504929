"""The agent's own state for a task (its config dir: Claude's session files), packed to store
centrally and unpacked on another node, so a follow-up there can `--resume` the same session.

The folder was written by the agent, so it is read as data the way the working copy is: from a
folder handle, with the agent's filesystem identity, never following a symlink, regular files and
folders only (a FIFO cannot stall it), names and sizes bounded. Unpacking writes regular files and
folders only, at checked relative paths, into an emptied folder, owned by the agent. Blocking:
run in a thread.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import tarfile
from pathlib import Path, PurePosixPath

from aicode.storage.identity import HostIdentities, fs_identity

__all__ = ["SessionStateError", "pack_session", "unpack_session"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_MAX_DEPTH = 16
_MAX_ENTRIES = 20_000


class SessionStateError(Exception):
    """The agent's state is larger than the cap, or a stored archive cannot be unpacked."""


class _Packer:
    def __init__(self, tar: tarfile.TarFile, limit: int) -> None:
        self._tar = tar
        self._left = limit
        self._entries = 0

    def walk(self, fd: int, prefix: str, depth: int) -> None:
        if depth > _MAX_DEPTH:
            return
        for name in sorted(os.listdir(fd)):
            self._entries += 1
            if self._entries > _MAX_ENTRIES:
                raise SessionStateError(f"the agent's state holds more than {_MAX_ENTRIES} files")
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except OSError:
                continue
            path = f"{prefix}{name}"
            if stat.S_ISDIR(st.st_mode):
                try:
                    sub = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except OSError:
                    continue
                try:
                    self._tar.addfile(_info(path, tarfile.DIRTYPE, 0))
                    self.walk(sub, path + "/", depth + 1)
                finally:
                    os.close(sub)
            elif stat.S_ISREG(st.st_mode):
                self._file(fd, name, path)

    def _file(self, fd: int, name: str, path: str) -> None:
        try:
            file_fd = os.open(name, _FILE_FLAGS, dir_fd=fd)
        except OSError:
            return
        try:
            if not stat.S_ISREG(os.fstat(file_fd).st_mode):
                return
            os.set_blocking(file_fd, True)
            chunks, size = [], 0
            while chunk := os.read(file_fd, min(1 << 20, self._left + 1 - size)):
                chunks.append(chunk)
                size += len(chunk)
                if size > self._left:
                    raise SessionStateError("the agent's state is larger than the cap")
        finally:
            os.close(file_fd)
        self._left -= size
        self._tar.addfile(_info(path, tarfile.REGTYPE, size), io.BytesIO(b"".join(chunks)))


def _info(path: str, kind: bytes, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(path)
    info.type, info.size, info.mode = kind, size, 0o700 if kind == tarfile.DIRTYPE else 0o600
    return info


def pack_session(folder: Path, ids: HostIdentities, limit: int) -> bytes:
    """The folder's regular files and folders as a gzipped tar; SessionStateError past `limit` bytes."""
    buffer = io.BytesIO()
    root = os.open(folder, _DIR_FLAGS)
    try:
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar, fs_identity(ids.agent_uid, ids.agent_gid):
            _Packer(tar, limit).walk(root, "", 0)
    finally:
        os.close(root)
    return buffer.getvalue()


def _safe(name: str) -> PurePosixPath | None:
    path = PurePosixPath(name)
    if path.is_absolute() or not path.parts or any(part in ("", ".", "..") for part in path.parts):
        return None
    return path if len(path.parts) <= _MAX_DEPTH + 1 else None


def unpack_session(archive: bytes, folder: Path, ids: HostIdentities, limit: int) -> None:
    """Replace the (agent's) folder's contents with the archive's files and folders."""
    for existing in os.listdir(folder):
        target = folder / existing
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink()
    written = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            for member in tar:
                path = _safe(member.name)
                if path is None or not (member.isdir() or member.isreg()):
                    continue
                target = folder.joinpath(*path.parts)
                if member.isdir():
                    target.mkdir(mode=0o700, parents=True, exist_ok=True)
                    continue
                written += member.size
                if written > limit:
                    raise SessionStateError("the stored agent state is larger than the cap")
                target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                source = tar.extractfile(member)
                assert source is not None
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
                with os.fdopen(fd, "wb") as out:
                    out.write(source.read())
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise SessionStateError(f"the stored agent state cannot be unpacked: {exc}") from None
    if os.geteuid() == 0:
        for root, dirs, files in os.walk(folder):
            for name in dirs + files:
                os.lchown(os.path.join(root, name), ids.agent_uid, ids.agent_gid)
