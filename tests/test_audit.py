"""The audit trail, and sign-in throttling that keeps a burst of bad guesses from slowing anyone else."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest
from litestar.testing import AsyncTestClient

from aicode.auth.throttle import LoginThrottle
from tests.conftest import ADMIN, login, make_user, wait_for_status
from tests.tasks_support import finished, submit

pytestmark = pytest.mark.timeout(120)


async def trail(client: AsyncTestClient, admin: dict[str, str], **filters: str) -> list[dict]:
    response = await client.get("/api/admin/audit", params=filters, headers=admin)
    assert response.status_code == 200, response.text
    return response.json()


async def test_the_trail_records_who_did_what_when_and_from_where(task_app, workspace) -> None:
    ws, alice = workspace
    admin = await login(task_app, *ADMIN)
    started = datetime.now(UTC).isoformat()
    await task_app.post("/api/auth/login", json={"username": "alice", "password": "not-her-password"})
    token = (await task_app.post("/api/tokens", json={"name": "ci"}, headers=alice)).json()
    await task_app.delete(f"/api/tokens/{token['id']}", headers=alice)
    await make_user(task_app, admin, "bob")
    await task_app.put(f"/api/workspaces/{ws['id']}/members/bob", json={"role": "viewer"}, headers=alice)
    await task_app.put(f"/api/workspaces/{ws['id']}/credentials/anthropic", json={"api_key": "sk-team-secret-1"},
                       headers=alice)
    await task_app.patch(f"/api/workspaces/{ws['id']}", json={"name": "renamed"}, headers=alice)
    task = await finished(task_app, alice, (await submit(task_app, alice, ws["id"], "@say hi"))["id"])
    events = await trail(task_app, admin, since=started)
    actions = [(e["actor"], e["action"]) for e in reversed(events)]
    for expected in [("alice", "auth.login_failed"), ("alice", "token.create"), ("alice", "token.revoke"),
                     ("admin", "user.create"), ("alice", "member.set"), ("alice", "credential.set"),
                     ("alice", "workspace.update"), ("alice", "task.submit")]:
        assert expected in actions, expected
    submitted = next(e for e in events if e["action"] == "task.submit")
    assert submitted["target_type"] == "task" and submitted["target_id"] == task["id"]
    assert submitted["address"] and datetime.fromisoformat(submitted["at"]) >= datetime.fromisoformat(started)
    assert "sk-team-secret-1" not in str(events) and token["token"] not in str(events)
    only_alice = await trail(task_app, admin, actor="alice", action="task.")
    assert {e["action"] for e in only_alice} == {"task.submit"}


async def test_the_trail_is_for_admins_only_and_has_a_page(task_app, workspace) -> None:
    _, alice = workspace
    assert (await task_app.get("/api/admin/audit", headers=alice)).status_code == 403
    admin = await login(task_app, *ADMIN)
    page = await task_app.get("/admin/audit", params={"action": "auth."}, headers=admin)
    assert page.status_code == 200 and "auth.login" in page.text


def test_the_throttle_counts_failures_per_account_and_per_address_in_a_sliding_window() -> None:
    now = [1000.0]
    throttle = LoginThrottle(per_account=3, per_address=5, window_s=60, clock=lambda: now[0])
    for _ in range(3):
        assert throttle.wait_s("Alice", "10.0.0.1") == 0
        throttle.failed("alice", "10.0.0.1")
    assert throttle.wait_s("ALICE", "10.0.0.9") == 61  # per account, whatever the address
    assert throttle.wait_s("bob", "10.0.0.1") == 0
    throttle.failed("bob", "10.0.0.1")
    throttle.failed("carol", "10.0.0.1")
    assert throttle.wait_s("dave", "10.0.0.1") == 61  # per address, whatever the account
    now[0] += 61
    assert throttle.wait_s("alice", "10.0.0.1") == 0
    throttle.failed("erin", "10.0.0.2")
    throttle.succeeded("erin")
    assert throttle.wait_s("erin", "10.0.0.3") == 0


async def test_too_many_bad_sign_ins_answer_429_with_retry_after_even_for_the_right_password(
    client, admin_headers
) -> None:
    await make_user(client, admin_headers, "alice")
    for _ in range(10):
        bad = await client.post("/api/auth/login", json={"username": "alice", "password": "wrong-password"})
        assert bad.status_code == 401
    blocked = await client.post("/api/auth/login", json={"username": "alice", "password": "alice-password"})
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
    assert "too many failed sign-ins" in blocked.json()["detail"]


@pytest.mark.serial  # a sign-in timed to 2 s: argon2 hashing shares the CPU with other tests
async def test_a_burst_of_bad_sign_ins_leaves_anothers_sign_in_fast(client, admin_headers) -> None:
    await make_user(client, admin_headers, "alice")
    await make_user(client, admin_headers, "bob")
    burst = [client.post("/api/auth/login", json={"username": "alice", "password": f"guess-{n}"}) for n in range(40)]
    statuses = [r.status_code for r in await asyncio.gather(*burst)]
    assert statuses.count(401) <= 10 and set(statuses) <= {401, 429}
    started = time.perf_counter()
    ok = await client.post("/api/auth/login", json={"username": "bob", "password": "bob-password"})
    assert ok.status_code == 200 and time.perf_counter() - started < 2.0


async def test_a_workspace_delete_is_recorded_with_its_name(client, admin_headers, source_repo) -> None:
    created = (await client.post("/api/workspaces", json={"name": "gone", "repo_url": str(source_repo)},
                                 headers=admin_headers)).json()
    await wait_for_status(client, admin_headers, created["id"])
    assert (await client.delete(f"/api/workspaces/{created['id']}", headers=admin_headers)).status_code == 204
    [deleted] = await trail(client, admin_headers, action="workspace.delete")
    assert deleted["detail"]["name"] == "gone" and deleted["target_id"] == created["id"]
