from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from aicode.db.migrations import apply_migrations, load_migrations
from tests.conftest import ADMIN_URL, database_url_for


@pytest.fixture
async def empty_database() -> AsyncIterator[str]:
    name = f"aicode_test_empty_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield database_url_for(name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_migrations_apply_on_an_empty_database(empty_database: str) -> None:
    conn = await asyncpg.connect(empty_database)
    try:
        applied = await apply_migrations(conn)
        tables = {r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")}
        recorded = [r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations ORDER BY version")]
    finally:
        await conn.close()
    assert applied == [m.name for m in load_migrations()]
    assert recorded == applied
    assert {"users", "api_tokens", "revoked_jwts", "workspaces", "schema_migrations"} <= tables


async def test_applying_migrations_again_changes_nothing(empty_database: str) -> None:
    conn = await asyncpg.connect(empty_database)
    try:
        await apply_migrations(conn)
        assert await apply_migrations(conn) == []
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(load_migrations())
    finally:
        await conn.close()


async def test_two_processes_migrating_at_once_apply_each_migration_once(empty_database: str) -> None:
    conns = [await asyncpg.connect(empty_database) for _ in range(3)]
    try:
        results = await asyncio.gather(*(apply_migrations(c) for c in conns))
        count = await conns[0].fetchval("SELECT count(*) FROM schema_migrations")
    finally:
        for conn in conns:
            await conn.close()
    assert sorted(len(r) for r in results) == [0, 0, len(load_migrations())]
    assert count == len(load_migrations())


async def test_a_failing_migration_is_rolled_back_and_not_recorded(empty_database: str, tmp_path: Path) -> None:
    (tmp_path / "0001_good.sql").write_text("CREATE TABLE good (id int);")
    (tmp_path / "0002_bad.sql").write_text("CREATE TABLE half (id int); SELECT no_such_function();")
    conn = await asyncpg.connect(empty_database)
    try:
        with pytest.raises(asyncpg.UndefinedFunctionError):
            await apply_migrations(conn, tmp_path)
        recorded = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")]
        half = await conn.fetchval("SELECT to_regclass('public.half')")
    finally:
        await conn.close()
    assert recorded == ["0001"]
    assert half is None


def test_migration_files_must_be_numbered(tmp_path: Path) -> None:
    (tmp_path / "init.sql").write_text("SELECT 1;")
    with pytest.raises(ValueError, match="NNNN_description.sql"):
        load_migrations(tmp_path)
