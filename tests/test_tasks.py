"""The task engine end to end with the fake agent: real PostgreSQL, real Docker, real git."""

from __future__ import annotations

import asyncio

import pygit2
import pytest

from aicode.settings import Settings
from tests.conftest import make_user
from tests.tasks_support import (
    checkout_path,
    events,
    finished,
    mirror_path,
    of_type,
    submit,
    submit_follow_up,
    task_ref,
    wait_until,
)

pytestmark = pytest.mark.timeout(180)


def mirror_repo(settings: Settings, workspace_id: str) -> pygit2.Repository:
    return pygit2.Repository(str(mirror_path(settings.data_dir, workspace_id)))


async def test_submit_answers_202_with_a_queued_task_on_its_own_branch(task_app, workspace) -> None:
    ws, alice = workspace
    task = await submit(task_app, alice, ws["id"], "@say hello")
    assert task["status"] == "queued"
    assert task["branch"] == f"aicode/{task['id']}"
    assert task["base_branch"] == "trunk"
    await finished(task_app, alice, task["id"])


async def test_a_task_commits_new_modified_and_deleted_files_on_its_branch(
    task_app, workspace, task_settings: Settings
) -> None:
    ws, alice = workspace
    prompt = "@write hello.txt hi there\n@write app.py print('changed')\n@delete README.md\n@say done"
    task = await finished(task_app, alice, (await submit(task_app, alice, ws["id"], prompt))["id"])
    assert task["status"] == "succeeded", task
    assert task["head_commit"] and task["base_commit"] and task["head_commit"] != task["base_commit"]
    files = (await task_app.get(f"/api/tasks/{task['id']}/files", headers=alice)).json()
    assert {f["path"]: f["status"] for f in files} == {
        "hello.txt": "added", "app.py": "modified", "README.md": "deleted"}
    repo = mirror_repo(task_settings, ws["id"])
    head = repo.references[task_ref(task["id"])].peel(pygit2.Commit)
    assert str(head.id) == task["head_commit"]
    assert head.author.name == "alice"
    assert head.committer.name == "aicode"
    assert [str(p) for p in head.parent_ids] == [task["base_commit"]]


async def test_the_agents_own_repository_has_the_turn_committed_too(task_app, workspace, task_settings) -> None:
    ws, alice = workspace
    task = await finished(task_app, alice, (await submit(task_app, alice, ws["id"], "@write hello.txt hi"))["id"])
    follow = await submit_follow_up(task_app, alice, task["id"], "@bash git status --porcelain; git log --format=%s")
    assert follow["status"] == "succeeded", follow
    evs = await events(task_app, alice, task["id"])
    log = of_type(evs, "tool.result")[-1]["data"]["output"]
    # A clean status (the first turn's work was committed in the agent's repository), then its history.
    assert log.splitlines()[0] == "@write hello.txt hi"
    assert "initial commit" in log
    server = mirror_repo(task_settings, ws["id"]).references[task_ref(task["id"])].peel(pygit2.Commit)
    agent = pygit2.Repository(str(checkout_path(task_settings.data_dir, task["id"])))
    assert agent.head.shorthand == task["branch"]
    assert agent.head.peel(pygit2.Commit).tree_id == server.tree_id


async def test_the_diff_shows_the_changes_as_a_patch(task_app, workspace) -> None:
    ws, alice = workspace
    task = await submit(task_app, alice, ws["id"], "@write notes.md first line")
    await finished(task_app, alice, task["id"])
    response = await task_app.get(f"/api/tasks/{task['id']}/diff", headers=alice)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/x-diff")
    assert "+++ b/notes.md" in response.text
    assert "+first line" in response.text


async def test_events_have_gapless_seqs_and_tell_the_whole_story(task_app, workspace) -> None:
    ws, alice = workspace
    task = await submit(task_app, alice, ws["id"], "@think plan it\n@write a.txt x\n@say all done")
    await finished(task_app, alice, task["id"])
    evs = await events(task_app, alice, task["id"])
    assert [e["seq"] for e in evs] == list(range(1, len(evs) + 1))
    types = [e["type"] for e in evs]
    assert types[0] == "task.status" and evs[0]["data"]["status"] == "queued"
    assert evs[1]["data"] == {"status": "running"}
    assert types.index("agent.started") < types.index("tool.call") < types.index("tool.result")
    assert types.index("turn.completed") < types.index("git.commit") < len(types) - 1
    assert evs[-1] == {**evs[-1], "type": "task.status", "data": {"status": "succeeded"}}
    kinds = {e["data"]["kind"] for e in of_type(evs, "message")}
    assert {"text", "thinking"} <= kinds
    assert of_type(evs, "usage")


async def test_a_turn_that_changes_nothing_makes_no_commit_and_says_so(task_app, workspace) -> None:
    ws, alice = workspace
    task = await finished(task_app, alice, (await submit(task_app, alice, ws["id"], "@say nothing to do"))["id"])
    assert task["status"] == "succeeded"
    assert task["head_commit"] is None
    evs = await events(task_app, alice, task["id"])
    assert not of_type(evs, "git.commit")
    assert any(e["data"]["code"] == "no_changes" for e in of_type(evs, "notice"))
    assert (await task_app.get(f"/api/tasks/{task['id']}/diff", headers=alice)).text == ""


async def test_gitignored_files_are_not_committed(task_app, workspace, task_settings: Settings) -> None:
    ws, alice = workspace
    prompt = "@write .gitignore *.log\n@write debug.log noisy\n@write kept.txt kept"
    task = await finished(task_app, alice, (await submit(task_app, alice, ws["id"], prompt))["id"])
    paths = {f["path"] for f in (await task_app.get(f"/api/tasks/{task['id']}/files", headers=alice)).json()}
    assert paths == {".gitignore", "kept.txt"}


async def test_a_follow_up_resumes_the_session_and_adds_a_second_commit(task_app, workspace) -> None:
    ws, alice = workspace
    first = await finished(task_app, alice, (await submit(task_app, alice, ws["id"], "@write one.txt 1"))["id"])
    assert first["status"] == "succeeded" and first["session_id"]
    response = await task_app.post(f"/api/tasks/{first['id']}/messages", json={"prompt": "@write two.txt 2"},
                                   headers=alice)
    assert response.status_code == 202
    second = await finished(task_app, alice, first["id"])
    assert second["status"] == "succeeded"
    assert second["session_id"] == first["session_id"]
    assert second["turns"] == 2
    assert second["head_commit"] != first["head_commit"]
    evs = await events(task_app, alice, first["id"])
    assert [e["seq"] for e in evs] == list(range(1, len(evs) + 1))
    assert len(of_type(evs, "git.commit")) == 2
    texts = " ".join(e["data"]["text"] for e in of_type(evs, "message"))
    assert "resumed session with 1 earlier turn" in texts
    paths = {f["path"] for f in (await task_app.get(f"/api/tasks/{first['id']}/files", headers=alice)).json()}
    assert paths == {"one.txt", "two.txt"}


async def test_a_follow_up_while_running_answers_409(task_app, workspace) -> None:
    ws, alice = workspace
    task = await submit(task_app, alice, ws["id"], "@sleep 5")
    await wait_until(task_app, alice, task["id"], {"running"})
    response = await task_app.post(f"/api/tasks/{task['id']}/messages", json={"prompt": "more"}, headers=alice)
    assert response.status_code == 409
    await task_app.post(f"/api/tasks/{task['id']}/cancel", headers=alice)


async def test_a_follow_up_keeps_the_tasks_agent(task_app, workspace) -> None:
    ws, alice = workspace
    task = await finished(task_app, alice, (await submit(task_app, alice, ws["id"], "@say hi"))["id"])
    other = await task_app.post(f"/api/tasks/{task['id']}/messages", json={"prompt": "more", "agent": "codex"},
                                headers=alice)
    assert other.status_code == 409 and "start a new task" in other.json()["detail"]
    same = await task_app.post(f"/api/tasks/{task['id']}/messages", json={"prompt": "@say more", "agent": "claude"},
                               headers=alice)
    assert same.status_code == 202, same.text
    unknown = await task_app.post(f"/api/workspaces/{ws['id']}/tasks", json={"prompt": "x", "agent": "cursor"},
                                  headers=alice)
    assert unknown.status_code == 400 and "agent" in unknown.text


async def test_a_codex_task_without_an_openai_key_fails_saying_where_to_add_one(task_app, workspace) -> None:
    ws, alice = workspace  # alice holds an Anthropic key only
    task = await finished(task_app, alice, (await submit(task_app, alice, ws["id"], "hi", agent="codex"))["id"])
    assert task["status"] == "failed" and task["agent"] == "codex"
    assert "no OpenAI key" in task["error"] and "Settings" in task["error"]


@pytest.mark.parametrize(
    ("prompt", "needle"),
    [
        ("@api_error 401", "401"),
        ("@no_result", "without a result line"),
        ("@exit 3", "code 3"),
        ("@max_turns", "turn limit"),
    ],
)
async def test_agent_failures_end_the_task_failed_with_an_actionable_error(
    task_app, workspace, prompt: str, needle: str
) -> None:
    ws, alice = workspace
    task = await finished(task_app, alice, (await submit(task_app, alice, ws["id"], prompt))["id"])
    assert task["status"] == "failed"
    assert needle in task["error"]
    last = (await events(task_app, alice, task["id"]))[-1]
    assert last["data"]["status"] == "failed" and needle in last["data"]["error"]


async def test_cancel_stops_a_running_task_within_seconds_and_keeps_its_work(task_app, workspace) -> None:
    ws, alice = workspace
    task = await submit(task_app, alice, ws["id"], "@write partial.txt half done\n@sleep 60\n@write never.txt x")
    await wait_until(task_app, alice, task["id"], {"running"})
    async with asyncio.timeout(20):
        while not of_type(await events(task_app, alice, task["id"]), "tool.result"):
            await asyncio.sleep(0.05)
    response = await task_app.post(f"/api/tasks/{task['id']}/cancel", headers=alice)
    assert response.status_code == 202
    ended = await finished(task_app, alice, task["id"], timeout=15)
    assert ended["status"] == "cancelled"
    commits = of_type(await events(task_app, alice, task["id"]), "git.commit")
    assert len(commits) == 1 and commits[0]["data"]["partial"] is True
    paths = {f["path"] for f in (await task_app.get(f"/api/tasks/{task['id']}/files", headers=alice)).json()}
    assert paths == {"partial.txt"}


async def test_a_queued_task_that_is_cancelled_never_starts(task_app, workspace) -> None:
    ws, alice = workspace
    blockers = [await submit(task_app, alice, ws["id"], "@sleep 30") for _ in range(2)]
    queued = await submit(task_app, alice, ws["id"], "@write nope.txt x")
    response = await task_app.post(f"/api/tasks/{queued['id']}/cancel", headers=alice)
    assert response.status_code == 202
    assert response.json()["status"] == "cancelled"
    for blocker in blockers:
        await task_app.post(f"/api/tasks/{blocker['id']}/cancel", headers=alice)
    for blocker in blockers:
        await finished(task_app, alice, blocker["id"])
    evs = await events(task_app, alice, queued["id"])
    assert [e["data"]["status"] for e in evs if e["type"] == "task.status"] == ["queued", "cancelled"]
    assert [e["data"]["by"] for e in evs if e["data"].get("code") == "cancel_requested"] == ["alice"]


async def test_cancelling_a_finished_task_answers_409(task_app, workspace) -> None:
    ws, alice = workspace
    task = await finished(task_app, alice, (await submit(task_app, alice, ws["id"], "@say hi"))["id"])
    assert (await task_app.post(f"/api/tasks/{task['id']}/cancel", headers=alice)).status_code == 409


async def test_the_timeout_fails_the_task_and_commits_the_work_as_partial(task_app, workspace) -> None:
    ws, alice = workspace
    task = await submit(task_app, alice, ws["id"], "@write early.txt x\n@sleep 60", timeout_s=3)
    ended = await finished(task_app, alice, task["id"], timeout=30)
    assert ended["status"] == "failed"
    assert "timed out after 3 s" in ended["error"]
    commits = of_type(await events(task_app, alice, task["id"]), "git.commit")
    assert commits and commits[0]["data"]["partial"] is True


async def test_no_more_tasks_run_at_once_than_the_limit(task_app, workspace) -> None:
    ws, alice = workspace
    supervisor = task_app.app.state.supervisor
    tasks = [await submit(task_app, alice, ws["id"], "@sleep 1") for _ in range(5)]
    peak = 0
    async with asyncio.timeout(60):
        while True:
            listed = (await task_app.get("/api/tasks", params={"workspace_id": ws["id"]}, headers=alice)).json()
            running = sum(1 for t in listed if t["status"] == "running")
            peak = max(peak, running, supervisor.running)
            if all(t["status"] == "succeeded" for t in listed if t["id"] in {x["id"] for x in tasks}):
                break
            await asyncio.sleep(0.02)
    assert 1 <= peak <= 2


async def test_after_n_returns_exactly_the_remaining_events(task_app, workspace) -> None:
    ws, alice = workspace
    task = await submit(task_app, alice, ws["id"], "@say a\n@say b\n@write c.txt c")
    await finished(task_app, alice, task["id"])
    everything = await events(task_app, alice, task["id"])
    rest = await events(task_app, alice, task["id"], after=3)
    assert rest == everything[3:]


async def test_sse_replays_then_streams_live_and_honours_last_event_id(task_app, workspace) -> None:
    ws, alice = workspace
    task = await submit(task_app, alice, ws["id"], "@say start\n@sleep 1\n@write live.txt x\n@say end")
    seqs: list[int] = []
    async with task_app.stream("GET", f"/api/tasks/{task['id']}/events",
                               headers={**alice, "Accept": "text/event-stream"}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("id:"):
                seqs.append(int(line.split(":", 1)[1]))
    assert seqs == list(range(1, len(seqs) + 1))
    total = len(await events(task_app, alice, task["id"]))
    assert seqs[-1] == total
    resumed: list[int] = []
    async with task_app.stream("GET", f"/api/tasks/{task['id']}/events",
                               headers={**alice, "Accept": "text/event-stream", "Last-Event-ID": "4"}) as response:
        async for line in response.aiter_lines():
            if line.startswith("id:"):
                resumed.append(int(line.split(":", 1)[1]))
    assert resumed == list(range(5, total + 1))


async def test_websocket_replays_after_n_then_streams_until_the_task_ends(task_app, workspace) -> None:
    ws, alice = workspace
    task = await submit(task_app, alice, ws["id"], "@say one\n@sleep 1\n@say two")
    await wait_until(task_app, alice, task["id"], {"running"})
    received = []
    with await task_app.websocket_connect(f"/ws/tasks/{task['id']}?after=1", headers=alice) as socket:
        while True:
            try:
                event = socket.receive_json(timeout=30)
            except Exception:
                break
            received.append(event)
            if event["type"] == "task.status" and event["data"]["status"] == "succeeded":
                break
    # Text deltas reach live viewers too, without a seq: every stored event comes once, in order.
    seqs = [e["seq"] for e in received if "seq" in e]
    assert seqs == list(range(2, len(seqs) + 2))
    assert all(e["type"] == "message.delta" for e in received if "seq" not in e)
    assert received[-1]["data"]["status"] == "succeeded"


async def test_another_user_cannot_read_follow_cancel_or_continue_a_task(task_app, workspace) -> None:
    ws, alice = workspace
    from tests.conftest import ADMIN, login

    admin = await login(task_app, *ADMIN)
    bob = await make_user(task_app, admin, "bob")
    task = await finished(task_app, alice, (await submit(task_app, alice, ws["id"], "@write x.txt x"))["id"])
    base = f"/api/tasks/{task['id']}"
    assert (await task_app.get(base, headers=bob)).status_code == 404
    assert (await task_app.get(f"{base}/events", headers=bob)).status_code == 404
    assert (await task_app.get(f"{base}/events", headers={**bob, "Accept": "text/event-stream"})).status_code == 404
    assert (await task_app.get(f"{base}/diff", headers=bob)).status_code == 404
    assert (await task_app.get(f"{base}/files", headers=bob)).status_code == 404
    assert (await task_app.post(f"{base}/cancel", headers=bob)).status_code == 404
    assert (await task_app.post(f"{base}/messages", json={"prompt": "hi"}, headers=bob)).status_code == 404
    assert (await task_app.post(f"/api/workspaces/{ws['id']}/tasks", json={"prompt": "x"}, headers=bob)
            ).status_code == 404
    assert (await task_app.get("/api/tasks", headers=bob)).json() == []
    with await task_app.websocket_connect(f"/ws/tasks/{task['id']}", headers=bob) as socket:
        assert socket.receive_json(timeout=10)["status_code"] == 404
    assert (await task_app.get(base, headers=admin)).status_code == 200


async def test_a_workspace_with_a_running_task_cannot_be_deleted(task_app, workspace) -> None:
    ws, alice = workspace
    task = await submit(task_app, alice, ws["id"], "@sleep 30")
    await wait_until(task_app, alice, task["id"], {"running"})
    response = await task_app.delete(f"/api/workspaces/{ws['id']}", headers=alice)
    assert response.status_code == 409
    assert "cancel" in response.json()["detail"]
    await task_app.post(f"/api/tasks/{task['id']}/cancel", headers=alice)
    await finished(task_app, alice, task["id"])


async def test_deleting_a_workspace_removes_its_tasks_and_their_working_copies(
    task_app, workspace, task_settings: Settings
) -> None:
    ws, alice = workspace
    task = await finished(task_app, alice, (await submit(task_app, alice, ws["id"], "@write a.txt x"))["id"])
    task_dir = checkout_path(task_settings.data_dir, task["id"]).parent
    assert (task_dir / "checkout" / "a.txt").exists()
    assert (await task_app.delete(f"/api/workspaces/{ws['id']}", headers=alice)).status_code == 204
    assert (await task_app.get(f"/api/tasks/{task['id']}", headers=alice)).status_code == 404
    assert not task_dir.exists()


async def test_a_quiet_sse_stream_sends_heartbeats(task_app, workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    import aicode.tasks.controller

    monkeypatch.setattr(aicode.tasks.controller, "SSE_HEARTBEAT_S", 0.2)
    ws, alice = workspace
    task = await submit(task_app, alice, ws["id"], "@say before\n@sleep 2\n@say after")
    lines: list[str] = []
    async with task_app.stream("GET", f"/api/tasks/{task['id']}/events",
                               headers={**alice, "Accept": "text/event-stream"}) as response:
        async for line in response.aiter_lines():
            lines.append(line)
    assert ": heartbeat" in lines
    seqs = [int(line.split(":", 1)[1]) for line in lines if line.startswith("id:")]
    assert seqs == list(range(1, len(seqs) + 1))
