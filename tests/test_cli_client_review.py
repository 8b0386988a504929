"""The `aicode` client reviewing and continuing tasks against a live server: diff, reply, cancel,
pull (the task's commits in a local clone), and the MCP server."""

from __future__ import annotations

import json
import selectors
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pygit2
import pytest

from tests.cli_support import (
    REPO,
    Account,
    aicode,
    assert_one_error_line,
)
from tests.conftest import git
from tests.tasks_support import mirror_path

# The `live_server` and `account` fixtures.
pytest_plugins = ["tests.cli_fixtures"]
pytestmark = pytest.mark.timeout(120)


def _finished_task(account: Account, prompt: str) -> dict[str, Any]:
    return account.wait(account.submit(prompt)["id"])


def test_diff_prints_the_tasks_patch(account: Account) -> None:
    task = _finished_task(account, "@write notes.md first line\n@write app.py print('bye')")
    result = aicode(account.env(), "diff", task["id"])
    assert result.returncode == 0, result.stderr
    with account.server.api(account.token) as api:
        assert result.stdout == api.get(f"/api/tasks/{task['id']}/diff").text
    assert "+++ b/notes.md" in result.stdout and "+first line" in result.stdout
    assert "\x1b[" not in result.stdout  # no colour into a pipe
    as_json = json.loads(aicode(account.env(), "diff", "--json", task["id"]).stdout)
    assert {f["path"] for f in as_json["files"]} == {"notes.md", "app.py"}


def test_reply_runs_a_follow_up_turn_and_shows_only_its_events(account: Account) -> None:
    task = _finished_task(account, "@say the first turn\n@write one.txt 1")
    result = aicode(account.env(), "reply", task["id"], "@say the second turn\n@write two.txt 2")
    assert result.returncode == 0, result.stderr
    assert "the second turn" in result.stdout
    assert "the first turn" not in result.stdout
    assert "» @say the second turn" in result.stdout
    after = account.task(task["id"])
    assert after["turns"] == 2 and after["status"] == "succeeded"
    assert after["head_commit"] != task["head_commit"]
    # What each turn changed, on its own.
    second = aicode(account.env(), "diff", "--turn", "2", task["id"])
    assert second.returncode == 0 and "+++ b/two.txt" in second.stdout and "one.txt" not in second.stdout
    first = json.loads(aicode(account.env(), "diff", "--json", "--turn", "1", task["id"]).stdout)
    assert [f["path"] for f in first["files"]] == ["one.txt"] and first["turn"] == 1
    missing = aicode(account.env(), "diff", "--turn", "3", task["id"])
    assert_one_error_line(missing, 1, "turn 3")


def test_reply_to_a_running_task_fails_with_one_line(account: Account) -> None:
    task = account.submit("@sleep 20")
    account.wait(task["id"], {"running"})
    result = aicode(account.env(), "reply", task["id"], "more")
    assert_one_error_line(result, 1, "still queued or running")
    assert aicode(account.env(), "cancel", task["id"]).returncode == 0


def test_cancel_stops_a_running_task(account: Account) -> None:
    task = account.submit("@write partial.txt x\n@sleep 30")
    account.wait(task["id"], {"running"})
    result = aicode(account.env(), "cancel", task["id"])
    assert result.returncode == 0, result.stderr
    assert account.wait(task["id"], timeout=20)["status"] == "cancelled"
    again = aicode(account.env(), "cancel", task["id"])
    assert_one_error_line(again, 1, "already ended (cancelled)")


# -- pull ---------------------------------------------------------------------------------------------


@pytest.fixture
def local_clone(source_repo: Path, tmp_path: Path) -> Path:
    """The developer's own clone of the workspace's repository, with a change of theirs not committed."""
    clone = tmp_path / "local"
    git(tmp_path, "clone", "-q", str(source_repo), str(clone))
    (clone / "README.md").write_text("# my local edit\n")
    return clone


def _commits(repo: pygit2.Repository, head: str, base: str) -> list[pygit2.Commit]:
    walker = repo.walk(head, pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.REVERSE)
    walker.hide(base)
    return list(walker)


def test_pull_brings_the_tasks_commits_onto_a_local_branch(account: Account, local_clone: Path) -> None:
    task = _finished_task(account, "@write feature.py x = 1\n@delete app.py")
    reply = aicode(account.env(), "reply", "--detach", task["id"], "@write feature.py x = 2\n@write docs/n.md ü")
    assert reply.returncode == 0, reply.stderr
    task = account.wait(task["id"])
    assert task["status"] == "succeeded" and task["turns"] == 2

    result = aicode(account.env(), "pull", task["id"], "--json", cwd=local_clone)
    assert result.returncode == 0, result.stderr
    pulled = json.loads(result.stdout)
    assert pulled["branch"] == task["branch"] and pulled["commits"] == 2

    local = pygit2.Repository(str(local_clone))
    server = pygit2.Repository(str(mirror_path(account.server.settings.data_dir, task["workspace_id"])))
    mine = _commits(local, local.branches.local[task["branch"]].target, task["base_commit"])
    theirs = _commits(server, task["head_commit"], task["base_commit"])
    assert [c.tree_id for c in mine] == [c.tree_id for c in theirs]
    assert [c.message for c in mine] == [c.message for c in theirs]
    assert [(c.author.name, c.author.email, c.author.time, c.author.offset) for c in mine] == \
        [(c.author.name, c.author.email, c.author.time, c.author.offset) for c in theirs]
    # The developer's own checkout was left alone: same branch, their edit still there.
    assert local.head.shorthand == "trunk"
    assert (local_clone / "README.md").read_text() == "# my local edit\n"


def test_pull_twice_needs_force(account: Account, local_clone: Path) -> None:
    task = _finished_task(account, "@write a.txt a")
    assert aicode(account.env(), "pull", task["id"], cwd=local_clone).returncode == 0
    again = aicode(account.env(), "pull", task["id"], cwd=local_clone)
    assert_one_error_line(again, 1, "already exists here: pass --force")
    forced = aicode(account.env(), "pull", task["id"], "--force", cwd=local_clone)
    assert forced.returncode == 0, forced.stderr


def test_pull_in_a_repository_without_the_base_commit_says_so(account: Account, tmp_path: Path) -> None:
    task = _finished_task(account, "@write a.txt a")
    unrelated = tmp_path / "unrelated"
    unrelated.mkdir()
    git(unrelated, "init", "-q")
    git(unrelated, "commit", "-q", "--allow-empty", "-m", "other history")
    result = aicode(account.env(), "pull", task["id"], cwd=unrelated)
    assert_one_error_line(result, 1, f"the task's base commit {task['base_commit'][:12]} is not in this repository")
    outside = aicode(account.env(), "pull", task["id"], cwd=tmp_path)
    assert_one_error_line(outside, 1, "not inside a git repository")


# -- MCP ----------------------------------------------------------------------------------------------


class McpSession:
    """Raw JSON-RPC lines to `aicode mcp` over its stdin/stdout, as an agent would speak them."""

    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "aicode", "mcp"], cwd=REPO, env=env, text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._next_id = 0

    def send(self, method: str, params: dict[str, Any] | None = None, *, notify: bool = False) -> Any:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params or {}}
        if not notify:
            self._next_id += 1
            message["id"] = self._next_id
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()
        return None if notify else self._answer(self._next_id)

    def _answer(self, request_id: int, timeout: float = 30) -> Any:
        assert self.process.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(self.process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not selector.select(timeout=deadline - time.monotonic()):
                break
            line = self.process.stdout.readline()
            assert line, f"aicode mcp ended: {self.process.stderr.read() if self.process.stderr else ''}"
            message = json.loads(line)
            if message.get("id") == request_id:
                assert "error" not in message, message
                return message["result"]
        raise AssertionError(f"no answer to request {request_id} within {timeout} s")

    def close(self) -> None:
        """End the session as an agent does (close stdin) and wait for the server to exit."""
        self.process.communicate(timeout=15)  # closes stdin, drains and closes stdout and stderr


def _initialized(session: McpSession) -> None:
    started = session.send("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                          "clientInfo": {"name": "test", "version": "1"}})
    assert started["serverInfo"]["name"] == "aicode"
    session.send("notifications/initialized", notify=True)


def test_mcp_lists_its_tools_and_creates_a_task(account: Account) -> None:
    session = McpSession(account.env())
    try:
        _initialized(session)
        tools = {tool["name"]: tool for tool in session.send("tools/list")["tools"]}
        assert set(tools) == {"create_task", "get_task", "list_tasks", "task_diff"}
        assert tools["create_task"]["inputSchema"]["required"] == ["workspace", "prompt"]

        created = session.send("tools/call", {"name": "create_task",
                                              "arguments": {"workspace": "proj", "prompt": "@write mcp.txt hi"}})
        assert not created.get("isError"), created
        task_id = created["structuredContent"]["id"]
        assert account.wait(task_id)["status"] == "succeeded"
        diff = session.send("tools/call", {"name": "task_diff", "arguments": {"task_id": task_id}})
        assert "+++ b/mcp.txt" in diff["structuredContent"]["result"]
        unknown = session.send("tools/call", {"name": "create_task",
                                              "arguments": {"workspace": "nope", "prompt": "x"}})
        assert unknown["isError"] and "no workspace named 'nope'" in unknown["content"][0]["text"]
    finally:
        session.close()
    assert session.process.returncode == 0


def test_mcp_create_task_passes_the_agent_on(account: Account) -> None:
    session = McpSession(account.env())
    try:
        _initialized(session)
        tools = {tool["name"]: tool for tool in session.send("tools/list")["tools"]}
        agent = tools["create_task"]["inputSchema"]["properties"]["agent"]
        assert {"enum": ["claude", "codex", "gemini"], "type": "string"} in agent["anyOf"]
        created = session.send("tools/call", {"name": "create_task", "arguments": {
            "workspace": "proj", "prompt": "@say hi", "agent": "gemini"}})
        assert not created.get("isError"), created
        assert created["structuredContent"]["agent"] == "gemini"
        # alice has no Gemini key: the turn fails at once, saying which key is missing.
        task = account.wait(created["structuredContent"]["id"])
        assert task["agent"] == "gemini" and task["status"] == "failed"
        assert "has no Google Gemini key" in task["error"]
        wrong = session.send("tools/call", {"name": "create_task", "arguments": {
            "workspace": "proj", "prompt": "@say hi", "agent": "gpt"}})
        assert wrong["isError"]
    finally:
        session.close()
    assert session.process.returncode == 0
