"""`aicode backup FILE` and `aicode restore FILE` (operators; the server's AICODE_* settings apply)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

from aicode.logging import configure_logging
from aicode.settings import Settings

__all__ = ["register"]


def register(commands: Any) -> None:
    backup = commands.add_parser("backup", help="write a consistent backup of this server to FILE (it may run)")
    backup.add_argument("file", metavar="FILE", type=Path)
    backup.set_defaults(run=run_backup)
    restore = commands.add_parser("restore", help="restore a backup into an empty data dir and database")
    restore.add_argument("file", metavar="FILE", type=Path)
    restore.set_defaults(run=run_restore)


def _layout(settings: Settings) -> Any:
    from aicode.storage.identity import server_identities
    from aicode.storage.layout import DataLayout

    return DataLayout(settings.data_dir, server_identities(settings.agent_uid, settings.agent_gid, settings.git_uid,
                                                           settings.git_gid))


def run_backup(args: argparse.Namespace) -> int:
    from aicode.backup import BackupError, BackupSummary, write_archive
    from aicode.crypto import load_or_create_secret_key
    from aicode.db.connect import database_url

    settings = Settings.from_env()
    configure_logging(settings.log_format, "warning")
    key_file = settings.data_dir / "secret_key"
    if settings.secret_key is None and not key_file.exists():
        print(f"aicode: {settings.data_dir} has no secret key: is AICODE_DATA_DIR the server's?", file=sys.stderr)
        return 1
    key = load_or_create_secret_key(settings.data_dir, settings.secret_key)

    async def dump() -> BackupSummary:
        async with database_url(settings) as url:
            return await asyncio.to_thread(write_archive, args.file, url, key, _layout(settings))

    try:
        summary = asyncio.run(dump())
    except (BackupError, OSError) as exc:
        print(f"aicode: backup failed: {exc}", file=sys.stderr)
        return 1
    print(f"backup written to {summary.path} ({summary.size_bytes / 1024 / 1024:.1f} MB: the database, the secret "
          f"key and {summary.mirrors} mirror{'' if summary.mirrors == 1 else 's'}); keep it as safe as the key")
    return 0


def run_restore(args: argparse.Namespace) -> int:
    from aicode.backup import BackupError, read_archive, restore_dump
    from aicode.crypto import store_secret_key
    from aicode.db.connect import database_url
    from aicode.db.migrations import apply_migrations

    settings = Settings.from_env()
    configure_logging(settings.log_format, "warning")
    data_dir = settings.data_dir
    if data_dir.exists() and any(data_dir.iterdir()):
        print(f"aicode: restore needs an empty data dir, and {data_dir} is not: point AICODE_DATA_DIR at a new "
              "folder", file=sys.stderr)
        return 1
    layout = _layout(settings)
    layout.prepare()

    async def restore(dump: Path) -> dict[str, int]:
        import asyncpg

        async with database_url(settings) as url:
            conn = await asyncpg.connect(url)
            try:
                tables = await conn.fetchval(
                    "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
                if tables:
                    raise BackupError("the database is not empty: restore into a new database "
                                      "(AICODE_DATABASE_URL), or leave it unset for the embedded one")
                await asyncio.to_thread(restore_dump, dump, url)
                await apply_migrations(conn)
                return {name: await conn.fetchval(f"SELECT count(*) FROM {name}")
                        for name in ("users", "workspaces", "tasks", "task_events")}
            finally:
                await conn.close()

    try:
        with tempfile.TemporaryDirectory(prefix="aicode-restore-") as scratch:
            unpacked = read_archive(args.file, Path(scratch), layout)
            if settings.secret_key is None:
                store_secret_key(data_dir, unpacked.secret_key)
            elif settings.secret_key != unpacked.secret_key:
                raise BackupError("AICODE_SECRET_KEY is set and is not the backup's key: the stored credentials "
                                  "could not be opened with it; unset it (the backup's key is then kept in the data "
                                  "dir) or set it to the backup's")
            counts = asyncio.run(restore(unpacked.dump))
    except (BackupError, OSError) as exc:
        print(f"aicode: restore failed: {exc}", file=sys.stderr)
        return 1
    print(f"restored the backup of {unpacked.manifest.get('created_at')}: {counts['users']} users, "
          f"{counts['workspaces']} workspaces, {counts['tasks']} tasks, {counts['task_events']} events; "
          f"start the server with AICODE_DATA_DIR={data_dir}")
    return 0
