"""Sessions end when they should: password resets, disables, role changes and removals take effect at once."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from litestar.testing import AsyncTestClient

from aicode.settings import Settings
from tests.cli_support import serve_in_thread
from tests.conftest import ADMIN, login, make_user
from tests.tasks_support import finished, submit, wait_until

pytestmark = pytest.mark.timeout(120)


async def _token(client: AsyncTestClient, headers: dict[str, str]) -> dict[str, str]:
    created = await client.post("/api/tokens", json={"name": "script"}, headers=headers)
    assert created.status_code == 201, created.text
    return {"Authorization": f"Bearer {created.json()['token']}"}


async def _user_id(client: AsyncTestClient, headers: dict[str, str]) -> str:
    return (await client.get("/api/me", headers=headers)).json()["id"]


async def test_a_password_reset_ends_every_jwt_and_api_token_at_once(client, admin_headers) -> None:
    alice = await make_user(client, admin_headers, "alice")
    token = await _token(client, alice)
    reset = await client.patch(f"/api/admin/users/{await _user_id(client, alice)}",
                               json={"password": "a-brand-new-password"}, headers=admin_headers)
    assert reset.status_code == 200
    assert (await client.get("/api/me", headers=alice)).status_code == 401
    assert (await client.get("/api/me", headers=token)).status_code == 401
    fresh = await login(client, "alice", "a-brand-new-password")
    assert (await client.get("/api/me", headers=fresh)).status_code == 200


async def test_re_enabling_a_user_does_not_bring_their_old_tokens_back(client, admin_headers) -> None:
    alice = await make_user(client, admin_headers, "alice")
    token = await _token(client, alice)
    user = f"/api/admin/users/{await _user_id(client, alice)}"
    assert (await client.patch(user, json={"disabled": True}, headers=admin_headers)).status_code == 200
    assert (await client.get("/api/me", headers=alice)).status_code == 401
    assert (await client.patch(user, json={"disabled": False}, headers=admin_headers)).status_code == 200
    assert (await client.get("/api/me", headers=alice)).status_code == 401
    assert (await client.get("/api/me", headers=token)).status_code == 401
    assert (await client.get("/api/me", headers=await login(client, "alice", "alice-password"))).status_code == 200


async def test_an_admin_made_member_loses_admin_rights_on_the_next_request(client, admin_headers) -> None:
    boss = await make_user(client, admin_headers, "boss")
    user = f"/api/admin/users/{await _user_id(client, boss)}"
    await client.patch(user, json={"admin": True}, headers=admin_headers)
    assert (await client.get("/api/admin/users", headers=boss)).status_code == 200
    await client.patch(user, json={"admin": False}, headers=admin_headers)
    assert (await client.get("/api/admin/users", headers=boss)).status_code == 403
    assert (await client.get("/api/me", headers=boss)).status_code == 200


async def _read_sse(http: httpx.AsyncClient, headers: dict[str, str], task_id: str, kinds: list[str]) -> None:
    async with http.stream("GET", f"/api/tasks/{task_id}/events",
                           headers={**headers, "Accept": "text/event-stream"}) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                kinds.append(line.split(":", 1)[1].strip())


async def test_an_open_stream_ends_when_its_reader_is_removed_from_the_workspace(
    task_settings: Settings, source_repo
) -> None:
    # A real server: the test client would hold the event loop for the whole streamed answer.
    with serve_in_thread(task_settings) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            admin = await _login(http, *ADMIN)
            alice, bob = await _member(http, admin, "alice"), await _member(http, admin, "bob")
            await http.put("/api/me/credentials/anthropic", json={"api_key": "sk-test-alice"}, headers=alice)
            ws = (await http.post("/api/workspaces", json={"name": "p", "repo_url": str(source_repo)},
                                  headers=alice)).json()
            await http.put(f"/api/workspaces/{ws['id']}/members/bob", json={"role": "viewer"}, headers=alice)
            async with asyncio.timeout(30):
                while (await http.get(f"/api/workspaces/{ws['id']}", headers=alice)).json()["status"] != "ready":
                    await asyncio.sleep(0.1)
            task = (await http.post(f"/api/workspaces/{ws['id']}/tasks", json={"prompt": "@sleep 20"},
                                    headers=alice)).json()
            kinds: list[str] = []
            reader = asyncio.create_task(_read_sse(http, bob, task["id"], kinds))
            async with asyncio.timeout(30):
                while "agent.started" not in kinds:
                    await asyncio.sleep(0.1)
            assert not reader.done()
            removed = await http.delete(f"/api/workspaces/{ws['id']}/members/bob", headers=alice)
            assert removed.status_code == 204
            await asyncio.wait_for(reader, 10)  # ended at once, long before the task
            assert (await http.get(f"/api/tasks/{task['id']}", headers=alice)).json()["status"] == "running"
            assert (await http.get(f"/api/tasks/{task['id']}/events", headers=bob)).status_code == 404
            await http.post(f"/api/tasks/{task['id']}/cancel", headers=alice)


async def _login(http: httpx.AsyncClient, username: str, password: str) -> dict[str, str]:
    response = await http.post("/api/auth/login", json={"username": username, "password": password})
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def _member(http: httpx.AsyncClient, admin: dict[str, str], name: str) -> dict[str, str]:
    created = await http.post("/api/admin/users", json={"username": name, "password": f"{name}-password"},
                              headers=admin)
    assert created.status_code == 201, created.text
    return await _login(http, name, f"{name}-password")


async def test_an_open_websocket_closes_when_its_reader_is_disabled(task_app, workspace) -> None:
    ws, alice = workspace
    admin = await login(task_app, *ADMIN)
    task = await submit(task_app, alice, ws["id"], "@sleep 20")
    await wait_until(task_app, alice, task["id"], {"running"})
    alice_id = await _user_id(task_app, alice)
    with await task_app.websocket_connect(f"/ws/tasks/{task['id']}", headers=alice) as socket:
        assert socket.receive_json(timeout=10)["type"] == "task.status"
        await task_app.patch(f"/api/admin/users/{alice_id}", json={"disabled": True}, headers=admin)
        with pytest.raises(Exception):  # noqa: B017 - the close ends receiving, whatever the client raises
            while True:
                socket.receive_json(timeout=10)
    await task_app.post(f"/api/tasks/{task['id']}/cancel", headers=admin)
    await finished(task_app, admin, task["id"])
