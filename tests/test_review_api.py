"""One turn's changes through GET /api/tasks/{id}/diff and /files with `commit` or `turn` (fake agent)."""

from __future__ import annotations

import pytest
from litestar.testing import AsyncTestClient

from tests.conftest import ADMIN, login, make_user
from tests.tasks_support import events, finished, of_type, submit, submit_follow_up

pytestmark = pytest.mark.timeout(180)


async def _two_turns(client: AsyncTestClient, headers: dict[str, str], workspace_id: str) -> tuple[dict, list[str]]:
    """A task whose first turn added one.txt and second two.txt; the task and its two turn commits."""
    task = await submit(client, headers, workspace_id, "@write one.txt first\\n")
    assert (await finished(client, headers, task["id"]))["status"] == "succeeded"
    task = await submit_follow_up(client, headers, task["id"], "@write two.txt second\\n")
    assert task["status"] == "succeeded", task
    commits = [e["data"]["commit"] for e in of_type(await events(client, headers, task["id"]), "git.commit")]
    assert len(commits) == 2
    return task, commits


async def _paths(client: AsyncTestClient, headers: dict[str, str], task_id: str, **params: object) -> list[str]:
    response = await client.get(f"/api/tasks/{task_id}/files", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return sorted(f["path"] for f in response.json())


async def test_a_turns_commit_gives_only_what_that_turn_changed(task_app, workspace) -> None:
    ws, alice = workspace
    task, (first, second) = await _two_turns(task_app, alice, ws["id"])
    assert await _paths(task_app, alice, task["id"]) == ["one.txt", "two.txt"]
    assert await _paths(task_app, alice, task["id"], commit=first) == ["one.txt"]
    assert await _paths(task_app, alice, task["id"], commit=second) == ["two.txt"]
    assert await _paths(task_app, alice, task["id"], turn=2) == ["two.txt"]
    patch = (await task_app.get(f"/api/tasks/{task['id']}/diff", params={"commit": second}, headers=alice)).text
    assert "+++ b/two.txt" in patch and "one.txt" not in patch
    by_number = await task_app.get(f"/api/tasks/{task['id']}/diff", params={"turn": 1}, headers=alice)
    assert "+++ b/one.txt" in by_number.text and "two.txt" not in by_number.text


async def test_a_commit_that_is_not_one_of_the_tasks_turns_is_a_404(task_app, workspace) -> None:
    ws, alice = workspace
    task, (first, _) = await _two_turns(task_app, alice, ws["id"])
    other = await submit(task_app, alice, ws["id"], "@write other.txt elsewhere\\n")
    await finished(task_app, alice, other["id"])
    other_commit = of_type(await events(task_app, alice, other["id"]), "git.commit")[0]["data"]["commit"]
    for params in ({"commit": task["base_commit"]}, {"commit": other_commit}, {"turn": 3},
                   {"commit": first, "turn": 2}):
        for route in ("diff", "files"):
            response = await task_app.get(f"/api/tasks/{task['id']}/{route}", params=params, headers=alice)
            assert response.status_code == 404, (route, params, response.text)
    malformed = await task_app.get(f"/api/tasks/{task['id']}/diff", params={"commit": "HEAD~1"}, headers=alice)
    assert malformed.status_code == 400, malformed.text


async def test_an_outsider_gets_a_404_for_a_turns_diff(task_app, workspace) -> None:
    ws, alice = workspace
    task, (first, _) = await _two_turns(task_app, alice, ws["id"])
    bob = await make_user(task_app, await login(task_app, *ADMIN), "bob")
    for route in ("diff", "files"):
        response = await task_app.get(f"/api/tasks/{task['id']}/{route}", params={"commit": first}, headers=bob)
        assert response.status_code == 404, response.text
