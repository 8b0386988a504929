"""The private PostgreSQL kept in the data dir when no AICODE_DATABASE_URL is set."""

from __future__ import annotations

import asyncio
import stat
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


@pytest.mark.timeout(120)
async def test_the_folders_above_the_database_stay_private_while_it_runs(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    tmp_path.chmod(0o700)
    embedded, url = await start(data)
    try:
        # As root, pgserver runs PostgreSQL as its own user and widens the folders above the database.
        assert stat.S_IMODE(data.stat().st_mode) == 0o700 and stat.S_IMODE(tmp_path.stat().st_mode) == 0o700
        conn = await asyncpg.connect(url)
        try:
            assert await conn.fetchval("SELECT 1") == 1
        finally:
            await conn.close()
    finally:
        await asyncio.to_thread(embedded.stop)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert not (data / "postgres" / "postmaster.pid").exists()  # stopped cleanly, not left running
