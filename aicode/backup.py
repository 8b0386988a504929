"""Backup and restore of a server: its database (dumped with PostgreSQL's own tools, a consistent
snapshot taken while the server runs), the secret key that opens the credentials stored in it, and the
workspaces' mirrors with the task branches (a cache: tasks' commits are in the database too, and a
mirror missing after a restore is cloned again on demand).

The archive is a gzipped tar holding `manifest.json`, `database.dump` (pg_dump's custom format),
`secret_key` and `git/mirrors/…`; it is written 0600, as it holds the key.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from aicode import __version__
from aicode.storage.layout import DataLayout

__all__ = ["BackupError", "BackupSummary", "Unpacked", "pg_tool", "read_archive", "restore_dump", "write_archive"]

FORMAT = 1
_MANIFEST = "manifest.json"
_DUMP = "database.dump"
_KEY = "secret_key"
_MIRRORS = "git/mirrors"


class BackupError(Exception):
    """The backup or restore cannot be made; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class BackupSummary:
    path: Path
    size_bytes: int
    mirrors: int
    created_at: str


def _major(binary: str) -> int:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    found = re.search(r"(\d+)(?:\.\d+)?", out)
    return int(found.group(1)) if found else 0


def pg_tool(name: str) -> str:
    """The newest `pg_dump` / `pg_restore` at hand: the system's, or the one the embedded PostgreSQL ships
    (a newer pg_dump reads older servers, never the other way round)."""
    candidates = [found for found in (shutil.which(name),) if found]
    try:
        import pgserver

        bundled = Path(pgserver.__file__).parent / "pginstall" / "bin" / name
        if bundled.exists():
            candidates.append(str(bundled))
    except ImportError:
        pass
    if not candidates:
        raise BackupError(f"{name} was not found: install PostgreSQL's client tools (Debian: postgresql-client)")
    return max(candidates, key=_major)


def _run(argv: list[str], what: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=6 * 3600, check=False)
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        raise BackupError(f"{what} failed: {said[-1] if said else f'exit code {done.returncode}'}")


def _skip_transient(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    name = Path(info.name).name
    # A clone still being made, and git's lock files, are not part of a mirror yet.
    if name.endswith((".tmp", ".lock")) or name.startswith("tmp_") or (name.startswith(".") and ".tmp" in name):
        return None
    return info


def write_archive(path: Path, database_url: str, secret_key: str, layout: DataLayout) -> BackupSummary:
    """Dump the database, then pack it with the key and the mirrors into `path` (written whole, or not at all)."""
    created_at = datetime.now(UTC).isoformat()
    path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="aicode-backup-", dir=path.parent) as scratch:
        dump = Path(scratch) / _DUMP
        _run([pg_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges", f"--file={dump}",
              f"--dbname={database_url}"], "pg_dump")
        partial = Path(scratch) / "archive.tar.gz"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        mirrors = sorted(p for p in layout.mirrors_dir.glob("*.git") if p.is_dir()) if layout.mirrors_dir.is_dir() \
            else []
        manifest = {"format": FORMAT, "aicode_version": __version__, "created_at": created_at,
                    "mirrors": [p.name for p in mirrors]}
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            _add_bytes(tar, _MANIFEST, json.dumps(manifest, indent=2).encode())
            _add_bytes(tar, _KEY, secret_key.encode())
            tar.add(dump, arcname=_DUMP)
            for mirror in mirrors:
                tar.add(mirror, arcname=f"{_MIRRORS}/{mirror.name}", filter=_skip_transient)
        os.replace(partial, path)
    return BackupSummary(path=path, size_bytes=path.stat().st_size, mirrors=len(mirrors), created_at=created_at)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    info.mtime = int(datetime.now(UTC).timestamp())
    tar.addfile(info, io.BytesIO(data))


@dataclass(frozen=True, slots=True)
class Unpacked:
    manifest: dict[str, object]
    secret_key: str
    dump: Path


def read_archive(path: Path, scratch: Path, layout: DataLayout) -> Unpacked:
    """Check the archive and unpack it: the dump into `scratch`, the mirrors into the data dir (owned
    by the git uid). Members that would land outside those places are refused."""
    try:
        tar = tarfile.open(path, mode="r:gz")
    except (OSError, tarfile.TarError) as exc:
        raise BackupError(f"{path} is not an aicode backup ({exc})") from None
    with tar:
        names = tar.getnames()
        if _MANIFEST not in names or _DUMP not in names or _KEY not in names:
            raise BackupError(f"{path} is not an aicode backup: it lacks {_MANIFEST}, {_DUMP} or {_KEY}")
        manifest = json.loads(_read(tar, _MANIFEST))
        if manifest.get("format") != FORMAT:
            raise BackupError(f"{path} is a backup of format {manifest.get('format')}; this aicode reads {FORMAT}")
        secret_key = _read(tar, _KEY).decode().strip()
        tar.extract(_DUMP, scratch, filter="data")
        members = [m for m in tar.getmembers() if m.name.startswith(f"{_MIRRORS}/")]
        tar.extractall(layout.data_dir, members=members, filter="data")
    ids = layout.ids
    if os.geteuid() == 0:
        for root, dirs, files in os.walk(layout.mirrors_dir):
            for name in [*dirs, *files]:
                os.lchown(os.path.join(root, name), ids.git_uid, ids.git_gid)
        os.lchown(layout.mirrors_dir, ids.git_uid, ids.git_gid)
    return Unpacked(manifest=manifest, secret_key=secret_key, dump=scratch / _DUMP)


def _read(tar: tarfile.TarFile, name: str) -> bytes:
    member = tar.extractfile(name)
    if member is None:
        raise BackupError(f"{name} in the backup is not a file")
    return member.read()


def restore_dump(dump: Path, database_url: str) -> None:
    _run([pg_tool("pg_restore"), "--no-owner", "--no-privileges", "--single-transaction", "--exit-on-error",
          f"--dbname={database_url}", str(dump)], "pg_restore")
