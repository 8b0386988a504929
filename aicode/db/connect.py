"""Resolves which PostgreSQL to use: the configured one, or the embedded one in the data dir."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aicode.db.embedded import EmbeddedPostgres
from aicode.settings import Settings

__all__ = ["database_url"]


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
