"""Shared fixtures: a real PostgreSQL database per test (copied from a migrated template),
a running app per test, and git repositories to register as workspaces."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from aicode.app import create_app
from aicode.db.migrations import apply_migrations
from aicode.logging import configure_logging
from aicode.settings import Settings

ADMIN = ("admin", "admin-password")
ADMIN_URL = os.environ.get("AICODE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
_RUN = uuid.uuid4().hex[:8]


def database_url_for(name: str) -> str:
    parts = urlsplit(ADMIN_URL)
    return urlunsplit(parts._replace(path="/" + name))


async def _admin_connection() -> asyncpg.Connection:
    return await asyncpg.connect(ADMIN_URL)


async def _as_admin(statement: str) -> None:
    """Run `statement` on a connection of its own: none is held for the session, as the fault tests
    restart PostgreSQL."""
    admin = await _admin_connection()
    try:
        await admin.execute(statement)
    finally:
        await admin.close()


_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def pytest_make_parametrize_id(config: pytest.Config, val: object, argname: str) -> str | None:
    """A parameter holding a uuid (often a fresh uuid4(): an id nothing has) shows it as UUID in the test's
    id: pytest-xdist needs every worker to collect the same test ids, and each imports the module anew."""
    if isinstance(val, uuid.UUID):
        return "UUID"
    if isinstance(val, str) and _UUID.search(val):
        return _UUID.sub("UUID", val)
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `serial` restart a shared service or measure time: in a pytest-xdist worker (`-n`),
    where other tests run beside them, they are skipped. `bash .ci/run` runs them after the others, alone."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    skip = pytest.mark.skip(reason="serial: it runs alone, in a pytest run without -n (bash .ci/run runs it so)")
    for item in items:
        if item.get_closest_marker("serial") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _cheap_password_hashing() -> None:
    """argon2id at its lowest cost: the production parameters (~0.15 s of CPU per hash or check) spent on
    the several sign-ins of every test came to minutes of CPU per run. `aicode serve` processes keep them."""
    from argon2 import PasswordHasher

    from aicode.auth import passwords

    passwords._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    passwords._DUMMY_HASH = passwords._hasher.hash("aicode-no-such-user")


@pytest.fixture(scope="session", autouse=True)
def _logging() -> None:
    configure_logging("json", "info")


@pytest.fixture(scope="session")
async def template_database() -> AsyncIterator[str]:
    """A database with every migration applied, copied for each test."""
    name = f"aicode_test_tpl_{_RUN}"
    await _as_admin(f'CREATE DATABASE "{name}"')
    try:
        conn = await asyncpg.connect(database_url_for(name))
        try:
            await apply_migrations(conn)
        finally:
            await conn.close()
        yield name
    finally:
        await _as_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def database_url(template_database: str) -> AsyncIterator[str]:
    name = f"aicode_test_{_RUN}_{uuid.uuid4().hex[:10]}"
    await _as_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
    try:
        yield database_url_for(name)
    finally:
        await _as_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def repos_root(tmp_path: Path) -> Path:
    root = tmp_path / "repos"
    root.mkdir()
    return root


@pytest.fixture
def settings(tmp_path: Path, database_url: str, repos_root: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        secret_key="test-secret-key-0123456789",
        local_repo_roots=(repos_root,),
        bootstrap_admin=ADMIN,
        docker_url=os.environ.get("AICODE_TEST_DOCKER_URL"),
    )


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[AsyncTestClient]:
    app = create_app(settings)
    async with AsyncTestClient(app=app) as test_client:
        yield test_client


async def login(client: AsyncTestClient, username: str, password: str) -> dict[str, str]:
    """Authorization headers for a fresh JWT of `username`."""
    response = await client.post("/api/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture
async def admin_headers(client: AsyncTestClient) -> dict[str, str]:
    return await login(client, *ADMIN)


async def make_user(client: AsyncTestClient, admin_headers: dict[str, str], name: str) -> dict[str, str]:
    """Create a member account and return its authorization headers."""
    password = f"{name}-password"
    response = await client.post(
        "/api/admin/users", json={"username": name, "password": password}, headers=admin_headers
    )
    assert response.status_code == 201, response.text
    return await login(client, name, password)


@pytest.fixture
async def alice(client: AsyncTestClient, admin_headers: dict[str, str]) -> dict[str, str]:
    return await make_user(client, admin_headers, "alice")


@pytest.fixture
async def bob(client: AsyncTestClient, admin_headers: dict[str, str]) -> dict[str, str]:
    return await make_user(client, admin_headers, "bob")


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.com",
           "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.com"}
    result = subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True)
    return result.stdout.strip()


@pytest.fixture
def source_repo(repos_root: Path) -> Iterator[Path]:
    """A git repository under an allowed root: branch `trunk` (default) and `feature`."""
    path = repos_root / "project"
    path.mkdir()
    git(path, "init", "-q", "-b", "trunk")
    (path / "README.md").write_text("# project\n")
    (path / "app.py").write_text("print('hello')\n")
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "initial commit")
    git(path, "branch", "feature")
    yield path


async def wait_for_status(
    client: AsyncTestClient, headers: dict[str, str], workspace_id: str, timeout: float = 20
) -> dict:
    """Poll the workspace until it leaves `cloning`."""
    async with asyncio.timeout(timeout):
        while True:
            response = await client.get(f"/api/workspaces/{workspace_id}", headers=headers)
            assert response.status_code == 200, response.text
            body = response.json()
            if body["status"] != "cloning":
                return body
            await asyncio.sleep(0.05)


# -- tasks -----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
async def fake_image() -> str:
    """The workspace image with the fake `claude` (tests/fakes/fake_claude.py) in place of the real one."""
    import aiodocker

    from tests.fakes.images import ensure_fake_image

    base = os.environ.get("AICODE_TEST_IMAGE", "aicode-workspace:test")
    async with aiodocker.Docker() as docker:
        return await ensure_fake_image(docker, base=base)


@pytest.fixture
def task_settings(settings: Settings, fake_image: str) -> Settings:
    import dataclasses

    return dataclasses.replace(settings, workspace_image=fake_image, workspace_network="none",
                               task_timeout_s=120, max_concurrent_tasks=2)


@pytest.fixture
async def task_app(task_settings: Settings) -> AsyncIterator[AsyncTestClient]:
    app = create_app(task_settings)
    async with AsyncTestClient(app=app) as test_client:
        yield test_client


@pytest.fixture
async def workspace(task_app: AsyncTestClient, source_repo: Path) -> AsyncIterator[tuple[dict, dict[str, str]]]:
    """A ready workspace of alice's (the source repo) and alice's headers; alice has stored an API key."""
    admin = await login(task_app, *ADMIN)
    alice = await make_user(task_app, admin, "alice")
    stored = await task_app.put("/api/me/credentials/anthropic", json={"api_key": "sk-test-alice-key"},
                                headers=alice)
    assert stored.status_code == 204, stored.text
    created = await task_app.post("/api/workspaces", json={"name": "proj", "repo_url": str(source_repo)},
                                  headers=alice)
    assert created.status_code == 201, created.text
    ready = await wait_for_status(task_app, alice, created.json()["id"])
    assert ready["status"] == "ready", ready
    yield ready, alice
