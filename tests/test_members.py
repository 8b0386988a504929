"""Shared workspaces: members and roles, what each role may do, and the team credential."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest
from litestar.testing import AsyncTestClient

from aicode.app import create_app
from aicode.settings import Settings
from tests.conftest import ADMIN, login, make_user, wait_for_status
from tests.fakes.mock_anthropic import MockAnthropic
from tests.tasks_support import events, finished, submit, submit_follow_up
from tests.test_boundary_gateway import _GATEWAY_CLIENT, probe_output, python_in_container

pytestmark = pytest.mark.timeout(120)


async def share(client: AsyncTestClient, owner: dict[str, str], workspace_id: str, username: str, role: str) -> dict:
    response = await client.put(f"/api/workspaces/{workspace_id}/members/{username}", json={"role": role},
                                headers=owner)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
async def team(task_app: AsyncTestClient, workspace) -> AsyncIterator[dict]:
    """alice's ready workspace shared with bob (editor) and carol (viewer); dave is not a member."""
    ws, alice = workspace
    admin = await login(task_app, *ADMIN)
    people = {"alice": alice, "admin": admin}
    for name in ("bob", "carol", "dave"):
        people[name] = await make_user(task_app, admin, name)
        await task_app.put("/api/me/credentials/anthropic", json={"api_key": f"sk-test-{name}-key"},
                           headers=people[name])
    await share(task_app, alice, ws["id"], "bob", "editor")
    await share(task_app, alice, ws["id"], "carol", "viewer")
    yield {"ws": ws, **people}


async def test_the_creator_is_the_first_owner_and_the_list_shows_each_role(task_app, team) -> None:
    ws = team["ws"]
    members = (await task_app.get(f"/api/workspaces/{ws['id']}/members", headers=team["carol"])).json()
    assert [(m["username"], m["role"]) for m in members] == [("alice", "owner"), ("bob", "editor"),
                                                             ("carol", "viewer")]
    for name, role in (("alice", "owner"), ("bob", "editor"), ("carol", "viewer")):
        listed = (await task_app.get("/api/workspaces", headers=team[name])).json()
        assert [(w["id"], w["role"]) for w in listed] == [(ws["id"], role)]
    assert (await task_app.get("/api/workspaces", headers=team["dave"])).json() == []


async def test_a_non_member_gets_the_404_of_an_id_that_does_not_exist(task_app, team) -> None:
    ws, dave = team["ws"], team["dave"]
    task = await submit(task_app, team["alice"], ws["id"], "@say hi")
    unknown = "00000000-0000-4000-8000-000000000000"
    for path, missing in ((f"/api/workspaces/{ws['id']}", f"/api/workspaces/{unknown}"),
                          (f"/api/workspaces/{ws['id']}/members", f"/api/workspaces/{unknown}/members"),
                          (f"/api/tasks/{task['id']}", f"/api/tasks/{unknown}")):
        hidden, absent = await task_app.get(path, headers=dave), await task_app.get(missing, headers=dave)
        assert hidden.status_code == absent.status_code == 404
        assert hidden.json()["detail"].replace(path.split("/")[3], "ID") == \
            absent.json()["detail"].replace(unknown, "ID")
    assert (await task_app.get("/api/tasks", headers=dave)).json() == []
    await finished(task_app, team["alice"], task["id"])


async def test_a_viewer_sees_everything_and_changes_nothing(task_app, team) -> None:
    ws, carol = team["ws"], team["carol"]
    task = await finished(task_app, team["alice"], (await submit(task_app, team["alice"], ws["id"], "@write a.txt a"))["id"])
    for path in (f"/api/tasks/{task['id']}", f"/api/tasks/{task['id']}/events", f"/api/tasks/{task['id']}/diff",
                 f"/api/tasks/{task['id']}/files", f"/api/tasks/{task['id']}/patch"):
        assert (await task_app.get(path, headers=carol)).status_code == 200, path
    assert [t["id"] for t in (await task_app.get("/api/tasks", headers=carol)).json()] == [task["id"]]
    refused = [
        await task_app.post(f"/api/workspaces/{ws['id']}/tasks", json={"prompt": "@say x"}, headers=carol),
        await task_app.post(f"/api/tasks/{task['id']}/messages", json={"prompt": "@say x"}, headers=carol),
        await task_app.post(f"/api/tasks/{task['id']}/cancel", headers=carol),
        await task_app.post(f"/api/workspaces/{ws['id']}/sync", headers=carol),
        await task_app.patch(f"/api/workspaces/{ws['id']}", json={"name": "renamed"}, headers=carol),
        await task_app.delete(f"/api/workspaces/{ws['id']}", headers=carol),
    ]
    assert [r.status_code for r in refused] == [403] * 6
    assert "you are viewer in this workspace" in refused[0].json()["detail"]


async def test_an_editor_runs_follows_up_and_cancels_only_what_it_started(task_app, team) -> None:
    ws, alice, bob = team["ws"], team["alice"], team["bob"]
    mine = await submit(task_app, bob, ws["id"], "@sleep 30")
    theirs = await submit(task_app, alice, ws["id"], "@sleep 30")
    assert (await task_app.post(f"/api/tasks/{theirs['id']}/cancel", headers=bob)).status_code == 403
    assert (await task_app.post(f"/api/tasks/{mine['id']}/cancel", headers=bob)).status_code == 202
    assert (await finished(task_app, bob, mine["id"]))["status"] == "cancelled"
    assert (await task_app.post(f"/api/tasks/{theirs['id']}/cancel", headers=alice)).status_code == 202
    done = await finished(task_app, bob, theirs["id"])
    followed = await submit_follow_up(task_app, bob, done["id"], "@write b.txt by bob")
    assert followed["status"] == "succeeded" and followed["turn_user_id"] != followed["user_id"]
    assert (await task_app.patch(f"/api/workspaces/{ws['id']}", json={"name": "x"}, headers=bob)).status_code == 403
    put = await task_app.put(f"/api/workspaces/{ws['id']}/members/dave", json={"role": "viewer"}, headers=bob)
    assert put.status_code == 403


async def test_an_owner_cancels_any_task_and_manages_members(task_app, team) -> None:
    ws, alice = team["ws"], team["alice"]
    bobs = await submit(task_app, team["bob"], ws["id"], "@sleep 30")
    assert (await task_app.post(f"/api/tasks/{bobs['id']}/cancel", headers=alice)).status_code == 202
    assert (await finished(task_app, alice, bobs["id"]))["status"] == "cancelled"
    assert (await share(task_app, alice, ws["id"], "carol", "editor"))["role"] == "editor"
    assert (await task_app.delete(f"/api/workspaces/{ws['id']}/members/carol", headers=alice)).status_code == 204
    assert (await task_app.get(f"/api/workspaces/{ws['id']}", headers=team["carol"])).status_code == 404


async def test_a_workspace_keeps_at_least_one_owner(task_app, team) -> None:
    ws, alice = team["ws"], team["alice"]
    demote = await task_app.put(f"/api/workspaces/{ws['id']}/members/alice", json={"role": "editor"}, headers=alice)
    remove = await task_app.delete(f"/api/workspaces/{ws['id']}/members/alice", headers=alice)
    assert demote.status_code == remove.status_code == 409
    assert "at least one owner" in remove.json()["detail"]
    await share(task_app, alice, ws["id"], "bob", "owner")
    assert (await task_app.put(f"/api/workspaces/{ws['id']}/members/alice", json={"role": "viewer"},
                               headers=alice)).status_code == 200


async def test_a_member_may_leave_and_unknown_names_and_roles_are_refused(task_app, team) -> None:
    ws, alice = team["ws"], team["alice"]
    assert (await task_app.delete(f"/api/workspaces/{ws['id']}/members/carol", headers=team["carol"])).status_code \
        == 204
    nobody = await task_app.put(f"/api/workspaces/{ws['id']}/members/nobody", json={"role": "viewer"}, headers=alice)
    assert nobody.status_code == 404 and "nobody" in nobody.json()["detail"]
    bad = await task_app.put(f"/api/workspaces/{ws['id']}/members/dave", json={"role": "admin"}, headers=alice)
    assert bad.status_code == 400


async def test_only_owners_set_the_team_credential_and_it_is_never_shown(task_app, team) -> None:
    ws = team["ws"]
    path = f"/api/workspaces/{ws['id']}/credentials/anthropic"
    assert (await task_app.put(path, json={"api_key": "sk-team-key-123"}, headers=team["bob"])).status_code == 403
    assert (await task_app.put(path, json={"api_key": "sk-team-key-123"}, headers=team["alice"])).status_code == 204
    status = await task_app.get(path, headers=team["carol"])
    assert status.json()["configured"] is True and status.json()["updated_by"] == "alice"
    assert "sk-team-key-123" not in status.text
    assert (await task_app.get(path, headers=team["dave"])).status_code == 404


async def test_keys_are_stored_per_provider_and_each_takes_only_what_it_can_use(task_app, team) -> None:
    alice, ws = team["alice"], team["ws"]
    assert (await task_app.put("/api/me/credentials/openai", json={"api_key": "sk-openai-alice-1"},
                               headers=alice)).status_code == 204
    listed = {c["provider"]: c for c in (await task_app.get("/api/me/credentials", headers=alice)).json()}
    assert set(listed) == {"anthropic", "openai", "gemini"}
    assert listed["openai"]["configured"] and listed["openai"]["kind"] == "api_key"
    assert not listed["gemini"]["configured"]
    oauth = await task_app.put("/api/me/credentials/gemini", json={"oauth_token": "ya29-token-1"}, headers=alice)
    assert oauth.status_code == 400 and "api_key" in oauth.json()["detail"]
    unknown = await task_app.put("/api/me/credentials/mistral", json={"api_key": "sk-mistral-1"}, headers=alice)
    assert unknown.status_code == 404 and "anthropic, openai, gemini" in unknown.json()["detail"]
    team_key = f"/api/workspaces/{ws['id']}/credentials/gemini"
    assert (await task_app.put(team_key, json={"api_key": "gm-team-key-1"}, headers=team["bob"])).status_code == 403
    assert (await task_app.put(team_key, json={"api_key": "gm-team-key-1"}, headers=alice)).status_code == 204
    assert (await task_app.get(team_key, headers=team["carol"])).json()["configured"] is True
    assert (await task_app.delete("/api/me/credentials/openai", headers=alice)).status_code == 204
    gone = await task_app.delete("/api/me/credentials/openai", headers=alice)
    assert gone.status_code == 404 and "OpenAI" in gone.json()["detail"]


async def test_a_requester_without_a_key_runs_on_the_team_credential_or_is_told_what_to_do(task_app, team) -> None:
    ws, bob = team["ws"], team["bob"]
    await task_app.delete("/api/me/credentials/anthropic", headers=bob)
    failed = await finished(task_app, bob, (await submit(task_app, bob, ws["id"], "@say hi"))["id"])
    assert failed["status"] == "failed" and "team key" in failed["error"]
    await task_app.put(f"/api/workspaces/{ws['id']}/credentials/anthropic", json={"api_key": "sk-team-key-123"},
                       headers=team["alice"])
    ran = await finished(task_app, bob, (await submit(task_app, bob, ws["id"], "@say hi"))["id"])
    assert ran["status"] == "succeeded", ran


@pytest.fixture
async def mock() -> AsyncIterator[MockAnthropic]:
    async with MockAnthropic() as server:
        yield server


async def test_the_gateway_swaps_in_the_team_key_only_for_a_requester_without_one(
    task_settings: Settings, mock: MockAnthropic, source_repo
) -> None:
    settings = dataclasses.replace(task_settings, workspace_network="gateway", anthropic_upstream=mock.url)
    async with AsyncTestClient(app=create_app(settings)) as client:
        admin = await login(client, *ADMIN)
        alice, bob = await make_user(client, admin, "alice"), await make_user(client, admin, "bob")
        await client.put("/api/me/credentials/anthropic", json={"api_key": "sk-alice-own-key"}, headers=alice)
        ws = (await client.post("/api/workspaces", json={"name": "team", "repo_url": str(source_repo)},
                                headers=alice)).json()
        await share(client, alice, ws["id"], "bob", "editor")
        await client.put(f"/api/workspaces/{ws['id']}/credentials/anthropic", json={"api_key": "sk-team-key-123"},
                         headers=alice)
        assert (await wait_for_status(client, alice, ws["id"]))["status"] == "ready"
        probe = python_in_container(_GATEWAY_CLIENT + 'print(call("POST", "/v1/messages", TOKEN, message("x")))\n')
        for who in (alice, bob):
            task = await finished(client, who, (await submit(client, who, ws["id"], probe))["id"])
            assert probe_output(await events(client, who, task["id"])) == ["200"]
    assert [headers["x-api-key"] for headers in mock.request_headers] == ["sk-alice-own-key", "sk-team-key-123"]
