"""Each user's git identity: set with PATCH /api/me (and in Settings), the author of their turns' commits, with
aicode as committer and a `Task:` trailer linking the task's page."""

from __future__ import annotations

import pygit2

from aicode.settings import Settings
from tests.tasks_support import finished, mirror_path, submit, submit_follow_up


async def test_me_takes_a_git_identity_and_refuses_header_breaking_values(task_app, workspace) -> None:
    _, alice = workspace
    me = (await task_app.get("/api/me", headers=alice)).json()
    assert me["git_name"] is None and me["git_email"] is None
    updated = await task_app.patch("/api/me", json={"git_name": "Alice Liddell", "git_email": "alice@example.com"},
                                   headers=alice)
    assert updated.status_code == 200, updated.text
    assert (updated.json()["git_name"], updated.json()["git_email"]) == ("Alice Liddell", "alice@example.com")
    for bad in ({"git_name": "Alice\nCommitter: mallory"}, {"git_email": "not an email"},
                {"git_email": "a@b>\n"}, {"git_name": ""}, {"username": "mallory"}):
        refused = await task_app.patch("/api/me", json=bad, headers=alice)
        assert refused.status_code == 400, (bad, refused.text)
    kept = await task_app.patch("/api/me", json={"git_email": None}, headers=alice)
    assert (kept.json()["git_name"], kept.json()["git_email"]) == ("Alice Liddell", None)


async def test_a_turns_commit_is_authored_by_its_requesters_git_identity(task_app, workspace,
                                                                          task_settings: Settings) -> None:
    ws, alice = workspace
    await task_app.patch("/api/me", json={"git_name": "Alice Liddell", "git_email": "alice@example.com"},
                         headers=alice)
    task = await finished(task_app, alice, (await submit(task_app, alice, ws["id"], "@write a.txt hi"))["id"])
    repo = pygit2.Repository(str(mirror_path(task_settings.data_dir, ws["id"])))
    commit = repo[task["head_commit"]]
    assert (commit.author.name, commit.author.email) == ("Alice Liddell", "alice@example.com")
    assert (commit.committer.name, commit.committer.email) == ("aicode", "aicode@aicode.invalid")
    assert f"Task: {task_settings.site_url}/tasks/{task['id']}" in commit.message
    # Back to the default: the username.
    await task_app.patch("/api/me", json={"git_name": None, "git_email": None}, headers=alice)
    task = await submit_follow_up(task_app, alice, task["id"], "@write b.txt again")
    commit = repo[task["head_commit"]]
    assert (commit.author.name, commit.author.email) == ("alice", "alice@aicode.invalid")
