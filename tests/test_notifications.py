"""Notification webhooks: a real HTTP receiver on 127.0.0.1 gets Slack-compatible and JSON messages when tasks
run by the fake agent succeed, fail or (live sessions) wait for input; failed deliveries are retried; URLs are
stored encrypted and listed redacted; workspace hooks follow the access rule."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from aicode.settings import Settings
from tests.conftest import ADMIN, login, make_user
from tests.fakes.webhook_receiver import Receiver
from tests.tasks_support import finished, submit

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def task_settings(task_settings: Settings) -> Settings:
    # Retries a tenth of a second apart instead of 5 s.
    return dataclasses.replace(task_settings, notify_retry_base_s=0.1)


@pytest.fixture
async def receiver() -> Any:
    async with Receiver() as server:
        yield server


async def _hook(client: AsyncTestClient, headers: dict[str, str], url: str, *, workspace: str | None = None,
                **fields: Any) -> dict[str, Any]:
    path = f"/api/workspaces/{workspace}/notifications" if workspace else "/api/me/notifications"
    created = await client.post(path, json={"url": url, **fields}, headers=headers)
    assert created.status_code == 201, created.text
    return created.json()


async def test_a_succeeded_task_sends_slack_and_json_to_the_users_and_the_workspaces_hooks(
        task_app: AsyncTestClient, workspace: tuple[dict, dict[str, str]], receiver: Receiver) -> None:
    ws, alice = workspace
    await _hook(task_app, alice, f"{receiver.url}/slack", format="slack")
    await _hook(task_app, alice, f"{receiver.url}/json", workspace=ws["id"], format="json")
    task = await finished(task_app, alice, (await submit(task_app, alice, ws["id"], "Fix <the> bug\n@say done"))["id"])
    assert task["status"] == "succeeded"
    await receiver.wait_for(lambda: receiver.bodies("/slack") and receiver.bodies("/json"))
    [slack] = receiver.bodies("/slack")
    assert "Task succeeded: Fix &lt;the&gt; bug" in slack["text"]
    assert "*proj*" in slack["text"] and "alice" in slack["text"]
    assert f"/tasks/{task['id']}|Open the task>" in slack["text"]
    [generic] = receiver.bodies("/json")
    assert generic["event"] == "task.succeeded" and generic["sent_at"]
    assert generic["task"]["id"] == task["id"] and generic["task"]["workspace_id"] == ws["id"]
    assert generic["task"]["status"] == "succeeded" and generic["task"]["prompt"] == "Fix <the> bug\n@say done"
    assert generic["task"]["url"].endswith(f"/tasks/{task['id']}") and generic["task"]["agent"] == "claude"
    assert generic["task"]["user"] == "alice" and generic["task"]["error"] is None
    listed = (await task_app.get("/api/me/notifications", headers=alice)).json()
    assert listed[0]["last_status"] == 200 and listed[0]["last_error"] is None


async def test_a_failed_task_sends_the_failure_with_its_error(
        task_app: AsyncTestClient, workspace: tuple[dict, dict[str, str]], receiver: Receiver) -> None:
    ws, alice = workspace
    await _hook(task_app, alice, f"{receiver.url}/json", events=["failed"])
    await _hook(task_app, alice, f"{receiver.url}/slack", format="slack", events=["succeeded"])
    task = await finished(task_app, alice, (await submit(task_app, alice, ws["id"], "@api_error 400"))["id"])
    assert task["status"] == "failed"
    await receiver.wait_for(lambda: receiver.bodies("/json"))
    [generic] = receiver.bodies("/json")
    assert generic["event"] == "task.failed" and generic["task"]["error"] == task["error"]
    await asyncio.sleep(0.5)
    assert receiver.bodies("/slack") == []  # that hook wants successes only


async def test_a_live_session_that_finished_a_turn_notifies_that_it_waits(
        task_app: AsyncTestClient, workspace: tuple[dict, dict[str, str]], receiver: Receiver) -> None:
    ws, alice = workspace
    await _hook(task_app, alice, f"{receiver.url}/json", events=["waiting"])
    created = await task_app.post(f"/api/workspaces/{ws['id']}/sessions", json={"prompt": "@say hello"},
                                  headers=alice)
    assert created.status_code == 201, created.text
    await receiver.wait_for(lambda: receiver.bodies("/json"), timeout=60)
    [generic] = receiver.bodies("/json")
    assert generic["event"] == "task.waiting" and generic["task"]["kind"] == "session"
    assert generic["task"]["status"] == "running" and generic["task"]["turns"] == 1
    assert (await task_app.delete(f"/api/sessions/{created.json()['id']}", headers=alice)).status_code == 202


async def test_a_receiver_that_fails_first_gets_the_message_on_a_retry(
        task_app: AsyncTestClient, workspace: tuple[dict, dict[str, str]], receiver: Receiver,
        task_settings: Settings) -> None:
    ws, alice = workspace
    receiver.fail_with, receiver.fail_times = 500, 1
    await _hook(task_app, alice, f"{receiver.url}/json")
    await finished(task_app, alice, (await submit(task_app, alice, ws["id"], "@say retried"))["id"])
    await receiver.wait_for(lambda: receiver.bodies("/json"))
    assert receiver.attempts == 2
    async with _db(task_settings) as conn, asyncio.timeout(10):
        while (row := await conn.fetchrow("SELECT attempts, delivered_at, last_status FROM notification_deliveries")
               )["delivered_at"] is None:
            await asyncio.sleep(0.05)
    assert row["attempts"] == 2 and row["last_status"] == 200


async def test_a_hanging_receiver_does_not_hold_the_task_up(
        task_app: AsyncTestClient, workspace: tuple[dict, dict[str, str]], receiver: Receiver) -> None:
    ws, alice = workspace
    receiver.hang = True
    await _hook(task_app, alice, f"{receiver.url}/json")
    started = time.monotonic()
    first = await finished(task_app, alice, (await submit(task_app, alice, ws["id"], "@say one"))["id"])
    await receiver.wait_for(lambda: receiver.attempts >= 1)
    second = await finished(task_app, alice, (await submit(task_app, alice, ws["id"], "@say two"))["id"])
    assert first["status"] == second["status"] == "succeeded"
    assert receiver.attempts >= 1 and receiver.received == []  # the first delivery is still held open
    assert time.monotonic() - started < 30
    receiver.hang = False


async def test_the_url_is_stored_encrypted_and_listed_redacted(
        client: AsyncTestClient, alice: dict[str, str], settings: Settings) -> None:
    secret_url = "https://hooks.slack.com/services/T000/B000/SeCrEtToKeN?x=1"
    created = await _hook(client, alice, secret_url, format="slack")
    assert created["url"] == "https://hooks.slack.com/…"
    assert created["events"] == ["succeeded", "failed", "waiting"]
    listed = (await client.get("/api/me/notifications", headers=alice)).json()
    assert [hook["url"] for hook in listed] == ["https://hooks.slack.com/…"]
    assert "SeCrEtToKeN" not in (await client.get("/settings", headers=alice)).text
    async with _db(settings) as conn:
        row = await conn.fetchrow("SELECT * FROM notification_hooks")
    assert "SeCrEtToKeN" not in repr(dict(row)) and b"SeCrEtToKeN" not in bytes(row["url_enc"])


@pytest.mark.parametrize("url", ["ftp://example.com/hook", "file:///etc/passwd", "https:///no-host", "example.com/x",
                                 "javascript:alert(1)"])
async def test_a_url_that_is_not_http_with_a_host_is_refused(client: AsyncTestClient, alice: dict[str, str],
                                                             url: str) -> None:
    refused = await client.post("/api/me/notifications", json={"url": url}, headers=alice)
    assert refused.status_code == 400, refused.text
    assert "webhook URL" in refused.json()["detail"]


async def test_send_test_answers_with_the_receivers_status(client: AsyncTestClient, alice: dict[str, str],
                                                           receiver: Receiver) -> None:
    hook = await _hook(client, alice, f"{receiver.url}/slack", format="slack")
    sent = await client.post(f"/api/me/notifications/{hook['id']}/test", headers=alice)
    assert sent.status_code == 200 and sent.json() == {"delivered": True, "status_code": 200, "error": None}
    assert "test notification" in receiver.bodies("/slack")[0]["text"]
    receiver.fail_with = 503
    failed = (await client.post(f"/api/me/notifications/{hook['id']}/test", headers=alice)).json()
    assert failed == {"delivered": False, "status_code": 503, "error": "the receiver answered 503"}
    removed = await client.delete(f"/api/me/notifications/{hook['id']}", headers=alice)
    assert removed.status_code == 204
    assert (await client.get("/api/me/notifications", headers=alice)).json() == []


async def test_owners_manage_workspace_hooks_members_list_them_outsiders_do_not_see_them(
        client: AsyncTestClient, admin_headers: dict[str, str], alice: dict[str, str], bob: dict[str, str],
        source_repo: Any) -> None:
    created = await client.post("/api/workspaces", json={"name": "team", "repo_url": str(source_repo)}, headers=alice)
    ws = created.json()["id"]
    carol = await make_user(client, admin_headers, "carol")
    await client.put(f"/api/workspaces/{ws}/members/bob", json={"role": "editor"}, headers=alice)
    hook = await _hook(client, alice, "https://chat.internal:8443/hooks/abc", workspace=ws)
    refused = await client.post(f"/api/workspaces/{ws}/notifications", json={"url": "https://x.example/h"},
                                headers=bob)
    assert refused.status_code == 403
    assert (await client.delete(f"/api/workspaces/{ws}/notifications/{hook['id']}", headers=bob)).status_code == 403
    listed = (await client.get(f"/api/workspaces/{ws}/notifications", headers=bob)).json()
    assert [h["url"] for h in listed] == ["https://chat.internal:8443/…"]
    assert (await client.get(f"/api/workspaces/{ws}/notifications", headers=carol)).status_code == 404
    assert (await client.post(f"/api/workspaces/{ws}/notifications", json={"url": "https://x.example/h"},
                              headers=carol)).status_code == 404
    # A workspace's hook is not one of the user's own.
    assert (await client.delete(f"/api/me/notifications/{hook['id']}", headers=alice)).status_code == 404
    assert (await client.delete(f"/api/workspaces/{ws}/notifications/{hook['id']}", headers=alice)).status_code == 204


async def test_a_user_removed_from_the_workspace_is_no_longer_notified(
        task_app: AsyncTestClient, workspace: tuple[dict, dict[str, str]], receiver: Receiver) -> None:
    ws, alice = workspace
    admin = await login(task_app, *ADMIN)
    bob = await make_user(task_app, admin, "bob")
    await task_app.put(f"/api/workspaces/{ws['id']}/members/bob", json={"role": "editor"}, headers=alice)
    await task_app.put("/api/me/credentials/anthropic", json={"api_key": "sk-test-bob-key"}, headers=bob)
    await _hook(task_app, bob, f"{receiver.url}/bob")
    await finished(task_app, bob, (await submit(task_app, bob, ws["id"], "@say as bob"))["id"])
    await receiver.wait_for(lambda: receiver.bodies("/bob"))
    task = await submit(task_app, bob, ws["id"], "@sleep 1")
    await task_app.delete(f"/api/workspaces/{ws['id']}/members/bob", headers=alice)
    await finished(task_app, alice, task["id"])
    await asyncio.sleep(0.5)
    assert len(receiver.bodies("/bob")) == 1


@asynccontextmanager
async def _db(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the test's database, for reading what the server stored."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        yield conn
    finally:
        await conn.close()
