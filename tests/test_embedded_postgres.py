"""The private PostgreSQL kept in the data dir when no AICODE_DATABASE_URL is set."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from aicode.db.embedded import EmbeddedPostgres


async def start(data_dir: Path) -> tuple[EmbeddedPostgres, str]:
    embedded = EmbeddedPostgres(data_dir)
    url = await asyncio.to_thread(embedded.start)
    await embedded.ensure_database()
    return embedded, url


@pytest.mark.timeout(120)
async def test_data_survives_a_stop_and_start(tmp_path: Path) -> None:
    embedded, url = await start(tmp_path / "data")
    try:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("CREATE TABLE notes (body text)")
            await conn.execute("INSERT INTO notes VALUES ('kept')")
        finally:
            await conn.close()
    finally:
        await asyncio.to_thread(embedded.stop)
    assert not (tmp_path / "data" / "postgres" / "postmaster.pid").exists()

    embedded, url = await start(tmp_path / "data")
    try:
        conn = await asyncpg.connect(url)
        try:
            assert await conn.fetchval("SELECT body FROM notes") == "kept"
        finally:
            await conn.close()
    finally:
        await asyncio.to_thread(embedded.stop)


@pytest.mark.timeout(120)
async def test_ensure_database_is_idempotent(tmp_path: Path) -> None:
    embedded, url = await start(tmp_path / "data")
    try:
        await embedded.ensure_database()
        conn = await asyncpg.connect(url)
        try:
            assert await conn.fetchval("SELECT current_database()") == "aicode"
        finally:
            await conn.close()
    finally:
        await asyncio.to_thread(embedded.stop)
