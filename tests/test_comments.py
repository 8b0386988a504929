"""Review comments on a task's diff, and sending them to the agent as one follow-up (fake agent)."""

from __future__ import annotations

import pytest
from litestar.testing import AsyncTestClient

from tests.conftest import ADMIN, login, make_user
from tests.tasks_support import events, finished, of_type, submit

pytestmark = pytest.mark.timeout(180)


async def _changed_task(client: AsyncTestClient, headers: dict[str, str], workspace_id: str) -> dict:
    """A finished task that added notes.txt with two lines."""
    task = await submit(client, headers, workspace_id, "@write notes.txt first line\\nsecond line\\n")
    task = await finished(client, headers, task["id"])
    assert task["status"] == "succeeded", task
    return task


async def _comment(client: AsyncTestClient, headers: dict[str, str], task_id: str, **fields: object):
    body = {"path": "notes.txt", "line": 1, "side": "new", "body": "say hello instead", **fields}
    return await client.post(f"/api/tasks/{task_id}/comments", json=body, headers=headers)


async def test_a_comment_on_a_changed_line_is_listed_with_the_code_it_quotes(task_app, workspace) -> None:
    ws, alice = workspace
    task = await _changed_task(task_app, alice, ws["id"])
    first = await _comment(task_app, alice, task["id"])
    assert first.status_code == 201, first.text
    second = await _comment(task_app, alice, task["id"], line=2, body="and drop this")
    listed = (await task_app.get(f"/api/tasks/{task['id']}/comments", headers=alice)).json()
    assert [c["id"] for c in listed] == [first.json()["id"], second.json()["id"]]
    assert listed[0] | {"id": 0, "created_at": ""} == {
        "id": 0, "task_id": task["id"], "path": "notes.txt", "line": 1, "side": "new", "body": "say hello instead",
        "author": "alice", "created_at": "", "sent_at": None, "quote": "first line"}
    assert listed[1]["quote"] == "second line"


async def test_sending_queues_one_follow_up_with_each_comment_and_marks_them_sent(task_app, workspace) -> None:
    ws, alice = workspace
    task = await _changed_task(task_app, alice, ws["id"])
    await _comment(task_app, alice, task["id"])
    await _comment(task_app, alice, task["id"], line=2, body="and drop this")
    sent = await task_app.post(f"/api/tasks/{task['id']}/comments/send", headers=alice)
    assert sent.status_code == 202, sent.text
    assert sent.json()["status"] == "queued"
    assert (await finished(task_app, alice, task["id"]))["status"] == "succeeded"
    evs = await events(task_app, alice, task["id"])
    prompts = [e["data"]["message"] for e in of_type(evs, "notice") if e["data"]["code"] == "follow_up"]
    assert len(prompts) == 1
    for expected in ("notes.txt, line 1", "| first line", "> say hello instead",
                     "notes.txt, line 2", "| second line", "> and drop this"):
        assert expected in prompts[0]
    # The fake agent echoes the prompt's text: the follow-up turn saw the comments.
    echoed = " ".join(e["data"]["text"] for e in of_type(evs, "message"))
    assert "notes.txt, line 1" in echoed and "say hello instead" in echoed
    listed = (await task_app.get(f"/api/tasks/{task['id']}/comments", headers=alice)).json()
    assert all(c["sent_at"] is not None for c in listed)


async def test_sending_with_no_open_comments_is_a_conflict(task_app, workspace) -> None:
    ws, alice = workspace
    task = await _changed_task(task_app, alice, ws["id"])
    response = await task_app.post(f"/api/tasks/{task['id']}/comments/send", headers=alice)
    assert response.status_code == 409, response.text
    assert "no open comments" in response.json()["detail"]


async def test_a_path_outside_the_diff_is_refused(task_app, workspace) -> None:
    ws, alice = workspace
    task = await _changed_task(task_app, alice, ws["id"])
    response = await _comment(task_app, alice, task["id"], path="README.md")
    assert response.status_code == 400, response.text
    assert "not among the task's changed files" in response.json()["detail"]


async def test_a_viewer_may_read_comments_but_not_write_them(task_app, workspace) -> None:
    ws, alice = workspace
    task = await _changed_task(task_app, alice, ws["id"])
    carol = await make_user(task_app, await login(task_app, *ADMIN), "carol")
    await task_app.put(f"/api/workspaces/{ws['id']}/members/carol", json={"role": "viewer"}, headers=alice)
    assert (await _comment(task_app, carol, task["id"])).status_code == 403
    assert (await task_app.get(f"/api/tasks/{task['id']}/comments", headers=carol)).status_code == 200


async def test_only_the_author_or_an_owner_deletes_a_comment(task_app, workspace) -> None:
    ws, alice = workspace
    task = await _changed_task(task_app, alice, ws["id"])
    bob = await make_user(task_app, await login(task_app, *ADMIN), "bob")
    await task_app.put(f"/api/workspaces/{ws['id']}/members/bob", json={"role": "editor"}, headers=alice)
    alices = (await _comment(task_app, alice, task["id"])).json()["id"]
    bobs = (await _comment(task_app, bob, task["id"], body="bob's")).json()["id"]
    assert (await task_app.delete(f"/api/tasks/{task['id']}/comments/{alices}", headers=bob)).status_code == 403
    assert (await task_app.delete(f"/api/tasks/{task['id']}/comments/{bobs}", headers=bob)).status_code == 204
    assert (await task_app.delete(f"/api/tasks/{task['id']}/comments/{alices}", headers=alice)).status_code == 204
    assert (await task_app.get(f"/api/tasks/{task['id']}/comments", headers=alice)).json() == []


async def test_deleting_a_comment_that_does_not_exist_is_a_404_and_an_id_beyond_64_bits_a_400(
    task_app, workspace
) -> None:
    ws, alice = workspace
    task = await _changed_task(task_app, alice, ws["id"])
    assert (await task_app.delete(f"/api/tasks/{task['id']}/comments/12345", headers=alice)).status_code == 404
    huge = await task_app.delete(f"/api/tasks/{task['id']}/comments/{2**64}", headers=alice)
    assert huge.status_code == 400, huge.text
