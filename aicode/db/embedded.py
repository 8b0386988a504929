"""A private PostgreSQL in the data dir, for when no AICODE_DATABASE_URL is configured.

We use the `pgserver` package: it ships PostgreSQL binaries in its wheel, so `pip install aicode`
is all a fresh machine needs (no distribution packages, no second service to set up), it starts in
about half a second, and it works as root by running the server as a dedicated system user.
Several aicode processes (the server, `aicode users create`) may share one embedded instance;
pgserver counts them and stops PostgreSQL when the last one lets go.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import structlog

__all__ = ["EmbeddedPostgres"]

log = structlog.get_logger(__name__)

_DATABASE = "aicode"


def _prefix(path: Path) -> list[Path]:
    return [path, *path.parents]


@contextmanager
def _path_kept_private(pgdata: Path, *, reachable: bool) -> Iterator[None]:
    """Undo, when the block ends, the modes pgserver widens on the folders above the database.

    As root, pgserver runs PostgreSQL as a system user of its own and makes every folder above the
    database readable by everyone (`g+rx,o+rx`, up to `/`) so that user can reach it. The running
    server never needs that again (PostgreSQL works from inside its data folder), so the modes are
    put back; `reachable` lets that user traverse them for the block (to stop the server).
    """
    if os.geteuid() != 0:
        yield
        return
    modes = {p: p.stat().st_mode & 0o7777 for p in _prefix(pgdata.parent) if p.exists()}
    try:
        if reachable:
            for folder, mode in modes.items():
                # pg_ctl runs as that user but keeps root's group, so the group bit counts too.
                os.chmod(folder, mode | 0o011)
        yield
    finally:
        for folder, mode in modes.items():
            os.chmod(folder, mode)


class EmbeddedPostgres:
    """Starts (or joins) the PostgreSQL kept in `<data_dir>/postgres` and stops it when done."""

    def __init__(self, data_dir: Path) -> None:
        self.pgdata = data_dir / "postgres"
        self._server: Any = None

    def start(self) -> str:
        """Start the server if needed and return the URL of the aicode database (blocking)."""
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (servers, containers); harmless here.
            warnings.simplefilter("ignore")
            import pgserver  # imported here: servers with an external database never need it

            with _path_kept_private(self.pgdata, reachable=False):
                server = self._server = pgserver.get_server(self.pgdata, cleanup_mode="stop")
        log.info("embedded_postgres.started", pgdata=str(self.pgdata))
        return server.get_uri(_DATABASE)

    async def ensure_database(self) -> None:
        """Create the aicode database on first start."""
        conn = await asyncpg.connect(self._server.get_uri("postgres"))
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", _DATABASE)
            if not exists:
                await conn.execute(f'CREATE DATABASE "{_DATABASE}"')
        finally:
            await conn.close()

    def stop(self) -> None:
        """Let go of the server; PostgreSQL stops when no other aicode process still uses it."""
        if self._server is not None:
            with _path_kept_private(self.pgdata, reachable=True):
                self._server.cleanup()
            self._server = None
            log.info("embedded_postgres.released", pgdata=str(self.pgdata))
