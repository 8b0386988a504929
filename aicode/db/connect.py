"""Resolves which PostgreSQL to use: the configured one, or the embedded one in the data dir."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aicode.db.embedded import EmbeddedPostgres
from aicode.db.pool import Database
from aicode.settings import Settings

__all__ = ["database_url", "operator_database"]


@asynccontextmanager
async def database_url(settings: Settings) -> AsyncIterator[str]:
    """Yield a URL to connect to; an embedded server started for it is released on exit."""
    if settings.database_url:
        yield settings.database_url
        return
    embedded = EmbeddedPostgres(settings.data_dir)
    url = await asyncio.to_thread(embedded.start)
    try:
        await embedded.ensure_database()
        yield url
    finally:
        await asyncio.to_thread(embedded.stop)


@asynccontextmanager
async def operator_database(settings: Settings) -> AsyncIterator[Database]:
    """A small pool on the server's database, migrated, for an operator command (`aicode users`, `gc`)."""
    from aicode.db.migrations import apply_migrations

    async with database_url(settings) as url:
        database = Database(url, min_size=1, max_size=2)
        await database.open()
        try:
            async with database.pool.acquire() as conn:
                await apply_migrations(conn)
            yield database
        finally:
            await database.close()
