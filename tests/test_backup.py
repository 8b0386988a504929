"""Backup while a task runs, restore into a fresh data dir and database: users, workspaces, tasks, events,
diffs and the encrypted credentials all come back (the key comes with them)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from aicode.app import create_app
from aicode.crypto import load_or_create_secret_key
from aicode.settings import Settings
from tests.conftest import _admin_connection, database_url_for, login
from tests.tasks_support import events, finished, of_type, submit, submit_follow_up, wait_until

pytestmark = pytest.mark.timeout(180)

REPO = Path(__file__).resolve().parent.parent


def _aicode(env_settings: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AICODE_")}
    env.update(env_settings)
    return subprocess.run([sys.executable, "-m", "aicode", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120, input=stdin)


async def test_a_backup_taken_while_a_task_runs_restores_everything_ended_before_it(
        task_app: AsyncTestClient, task_settings: Settings, workspace: tuple[dict, dict[str, str]],
        tmp_path: Path) -> None:
    ws, alice = workspace
    done = await submit(task_app, alice, ws["id"], "@write kept.txt before the backup")
    done = await finished(task_app, alice, done["id"])
    assert done["status"] == "succeeded"
    running = await submit(task_app, alice, ws["id"], "@sleep 20")
    await wait_until(task_app, alice, running["id"], {"running"})
    before = await events(task_app, alice, done["id"])

    archive = tmp_path / "backups" / "aicode.tar.gz"
    source = {"AICODE_DATABASE_URL": str(task_settings.database_url), "AICODE_DATA_DIR": str(task_settings.data_dir),
              "AICODE_SECRET_KEY": str(task_settings.secret_key)}
    backed = await asyncio.to_thread(_aicode, source, "backup", str(archive))
    assert backed.returncode == 0, backed.stderr
    assert "backup written" in backed.stdout and archive.stat().st_mode & 0o077 == 0
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert {"manifest.json", "database.dump", "secret_key"} <= set(names)
    assert any(name.startswith(f"git/mirrors/{ws['id']}.git/") for name in names)
    await task_app.post(f"/api/tasks/{running['id']}/cancel", headers=alice)

    # A fresh data dir and an empty database; no AICODE_SECRET_KEY: the backup's key is restored.
    name = f"restore_{uuid.uuid4().hex[:12]}"
    admin = await _admin_connection()
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        target = {"AICODE_DATABASE_URL": database_url_for(name), "AICODE_DATA_DIR": str(tmp_path / "restored")}
        restored = await asyncio.to_thread(_aicode, target, "restore", str(archive))
        assert restored.returncode == 0, restored.stderr
        assert "2 users, 1 workspaces" in restored.stdout, restored.stdout
        again = await asyncio.to_thread(_aicode, target, "restore", str(archive))
        assert again.returncode == 1 and "empty data dir" in again.stderr

        settings = dataclasses.replace(task_settings, database_url=database_url_for(name),
                                       data_dir=tmp_path / "restored", secret_key=None)
        async with AsyncTestClient(app=create_app(settings)) as client:
            alice2 = await login(client, "alice", "alice-password")
            shown = (await client.get(f"/api/tasks/{done['id']}", headers=alice2)).json()
            assert shown["status"] == "succeeded" and shown["head_commit"] == done["head_commit"]
            assert await events(client, alice2, done["id"]) == before
            diff = await client.get(f"/api/tasks/{done['id']}/diff", headers=alice2)
            assert diff.status_code == 200 and "before the backup" in diff.text
            # The task that ran during the backup is not left running.
            cut = await finished(client, alice2, running["id"])
            assert cut["status"] in ("interrupted", "failed", "cancelled"), cut
            # The stored API key is opened with the restored secret key: a follow-up runs.
            follow = await submit_follow_up(client, alice2, done["id"], "@read kept.txt")
            assert follow["status"] == "succeeded", follow
            assert "before the backup" in of_type(await events(client, alice2, done["id"]), "tool.result")[-1][
                "data"]["output"]
    finally:
        await asyncio.sleep(0.5)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_restore_refuses_a_database_that_is_not_empty_and_a_file_that_is_no_backup(
        task_settings: Settings, tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a backup")
    target = {"AICODE_DATABASE_URL": str(task_settings.database_url), "AICODE_DATA_DIR": str(tmp_path / "a")}
    refused = await asyncio.to_thread(_aicode, target, "restore", str(junk))
    assert refused.returncode == 1 and "not an aicode backup" in refused.stderr
    source = {"AICODE_DATABASE_URL": str(task_settings.database_url), "AICODE_DATA_DIR": str(task_settings.data_dir),
              "AICODE_SECRET_KEY": "k" * 32}
    async with AsyncTestClient(app=create_app(task_settings)):
        pass  # migrate and start once, so the data dir and the database are the server's
    made = await asyncio.to_thread(_aicode, source, "backup", str(tmp_path / "b.tar.gz"))
    assert made.returncode == 0, made.stderr
    into_used = await asyncio.to_thread(_aicode, {**target, "AICODE_DATA_DIR": str(tmp_path / "b")}, "restore",
                                        str(tmp_path / "b.tar.gz"))
    assert into_used.returncode == 1 and "database is not empty" in into_used.stderr


async def test_the_embedded_database_is_backed_up_and_restored_with_its_own_tools(tmp_path: Path) -> None:
    """No AICODE_DATABASE_URL: the dump and restore go through the embedded PostgreSQL (pgserver's binaries)."""
    source = {"AICODE_DATA_DIR": str(tmp_path / "one")}
    made = await asyncio.to_thread(_aicode, source, "users", "create", "carol", stdin="carol-password-1\n")
    assert made.returncode == 0, made.stderr
    load_or_create_secret_key(tmp_path / "one", None)  # as the server's first start does
    archive = tmp_path / "embedded.tar.gz"
    backed = await asyncio.to_thread(_aicode, source, "backup", str(archive))
    assert backed.returncode == 0, backed.stderr
    target = {"AICODE_DATA_DIR": str(tmp_path / "two")}
    restored = await asyncio.to_thread(_aicode, target, "restore", str(archive))
    assert restored.returncode == 0, restored.stderr
    assert "1 users" in restored.stdout
    assert (tmp_path / "two" / "secret_key").read_text() == (tmp_path / "one" / "secret_key").read_text()
