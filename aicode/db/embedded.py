"""A private PostgreSQL in the data dir, for when no AICODE_DATABASE_URL is configured.

We use the `pgserver` package: it ships PostgreSQL binaries in its wheel, so `pip install aicode`
is all a fresh machine needs (no distribution packages, no second service to set up), it starts in
about half a second, and it works as root by running the server as a dedicated system user.
Several aicode processes (the server, `aicode users create`) may share one embedded instance;
pgserver counts them and stops PostgreSQL when the last one lets go.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import asyncpg
import structlog

__all__ = ["EmbeddedPostgres"]

log = structlog.get_logger(__name__)

_DATABASE = "aicode"


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

            self._server = pgserver.get_server(self.pgdata, cleanup_mode="stop")
        log.info("embedded_postgres.started", pgdata=str(self.pgdata))
        return self._server.get_uri(_DATABASE)

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
            self._server.cleanup()
            self._server = None
            log.info("embedded_postgres.released", pgdata=str(self.pgdata))
