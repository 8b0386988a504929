"""The `aicode` console script, run as a real process: users, migrate and serve."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.cli_support import free_port

REPO = Path(__file__).resolve().parent.parent


def base_env(data_dir: Path, **settings: str) -> dict[str, str]:
    """The process environment without any AICODE_* setting of ours, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AICODE_")}
    return {**env, "AICODE_DATA_DIR": str(data_dir), "AICODE_LOG_FORMAT": "json", **settings}


def aicode(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aicode", *args], cwd=REPO, env=env, input=stdin,
        capture_output=True, text=True, timeout=60,
    )


@dataclass
class Server:
    url: str
    stderr_path: Path
    process: subprocess.Popen[bytes]
    exit_code: int | None = field(default=None)

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self.exit_code = self.process.wait(timeout=30)
        return self.exit_code


@contextlib.contextmanager
def serve(env: dict[str, str], logs: Path, timeout: float = 60) -> Iterator[Server]:
    """`aicode serve` on a free port, answering /healthz; stopped (SIGTERM, else kill) on exit."""
    port = free_port()
    logs.mkdir(parents=True, exist_ok=True)
    stderr_path = logs / f"serve-{port}.stderr"
    with open(stderr_path, "wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "aicode", "serve"], cwd=REPO, env={**env, "AICODE_PORT": str(port)},
            stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr,
        )
    server = Server(url=f"http://127.0.0.1:{port}", stderr_path=stderr_path, process=process)
    try:
        deadline = time.monotonic() + timeout
        while True:
            assert process.poll() is None, f"aicode serve exited early:\n{server.stderr}"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{server.url}/healthz", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"aicode serve did not answer /healthz:\n{server.stderr}"
            time.sleep(0.1)
        yield server
    finally:
        if process.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.stop()
        if process.poll() is None:
            process.kill()
            process.wait()


def login(server: Server, username: str, password: str) -> str:
    response = httpx.post(f"{server.url}/api/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def me(server: Server, token: str) -> httpx.Response:
    return httpx.get(f"{server.url}/api/me", headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def db_env(database_url: str, data_dir: Path) -> dict[str, str]:
    return base_env(data_dir, AICODE_DATABASE_URL=database_url)


# -- aicode users create -------------------------------------------------------------------------


async def test_users_create_makes_an_admin(db_env, database_url) -> None:
    result = aicode(db_env, "users", "create", "carol", "--admin", stdin="carol-password\n")
    assert result.returncode == 0, result.stderr
    assert "created admin carol" in result.stdout
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow("SELECT is_admin, password_hash FROM users WHERE username = 'carol'")
    finally:
        await conn.close()
    assert row is not None and row["is_admin"] is True
    assert "carol-password" not in row["password_hash"]


def test_users_create_twice_fails_with_one_line(db_env) -> None:
    assert aicode(db_env, "users", "create", "carol", stdin="carol-password\n").returncode == 0
    result = aicode(db_env, "users", "create", "carol", stdin="carol-password\n")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "carol" in result.stderr


def test_users_create_refuses_a_short_password(db_env) -> None:
    result = aicode(db_env, "users", "create", "carol", stdin="short\n")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "length" in result.stderr


# -- aicode migrate ------------------------------------------------------------------------------


def test_migrate_on_a_migrated_database_applies_nothing(db_env) -> None:
    result = aicode(db_env, "migrate")
    assert result.returncode == 0, result.stderr
    assert "applied 0 migration(s)" in result.stdout


# -- aicode serve --------------------------------------------------------------------------------


def test_bad_setting_exits_2_naming_it(data_dir) -> None:
    result = aicode(base_env(data_dir, AICODE_PORT="abc"), "serve")
    assert result.returncode == 2
    assert "AICODE_PORT" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.timeout(180)
def test_serve_exits_0_after_sigterm(tmp_path, data_dir) -> None:
    env = base_env(data_dir, AICODE_BOOTSTRAP_ADMIN="root:rootpassword")
    with serve(env, tmp_path / "logs") as server:
        login(server, "root", "rootpassword")
        exit_code = server.stop()
    assert "Application shutdown complete" in server.stderr
    assert exit_code == 0, server.stderr


@pytest.mark.timeout(180)
def test_serve_stops_its_embedded_postgres_on_sigterm(tmp_path, data_dir) -> None:
    pid_file = data_dir / "postgres" / "postmaster.pid"
    with serve(base_env(data_dir), tmp_path / "logs") as server:
        assert pid_file.exists()
        server.stop()
    assert "Traceback" not in server.stderr
    assert not pid_file.exists()


@pytest.mark.timeout(180)
def test_serve_keeps_data_and_secret_key_across_restarts(tmp_path, data_dir) -> None:
    with serve(base_env(data_dir, AICODE_BOOTSTRAP_ADMIN="root:rootpassword"), tmp_path / "logs") as first:
        token = login(first, "root", "rootpassword")
        first.stop()
    key_file = data_dir / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    # No bootstrap admin this time: the account must come from the kept database.
    with serve(base_env(data_dir), tmp_path / "logs") as second:
        login(second, "root", "rootpassword")
        response = me(second, token)  # signed by the first run's generated key
        assert response.status_code == 200, response.text
        assert response.json()["username"] == "root"
        second.stop()
    assert not (data_dir / "postgres" / "postmaster.pid").exists()


SETUP_CODE = re.compile(r'"setup_code": "([^"]+)"')


def test_serve_without_users_offers_a_one_time_setup_code(tmp_path, db_env) -> None:
    with serve(db_env, tmp_path / "logs") as server:
        stderr = server.stderr
        assert "aicode users create" in stderr
        match = SETUP_CODE.search(stderr)
        assert match, stderr
        body = {"setup_code": match.group(1), "username": "first", "password": "first-password"}
        response = httpx.post(f"{server.url}/api/auth/setup", json=body)
        assert response.status_code == 201, response.text
        assert response.json()["admin"] is True
        again = httpx.post(f"{server.url}/api/auth/setup", json={**body, "username": "second"})
        assert 400 <= again.status_code < 500
        login(server, "first", "first-password")
