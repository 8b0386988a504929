"""`aicode chat` against a live server (real PostgreSQL, Docker and git; the fake agent): a live session
prompt by prompt over its WebSocket, Ctrl-C to interrupt a turn, attaching again; and typed text in the
status area of `aicode run`."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import pytest
from rich.console import Console

from aicode.cli.client.event_view import EventView
from tests.cli_support import REPO, Account, aicode

# The `live_server` and `account` fixtures.
pytest_plugins = ["tests.cli_fixtures"]
pytestmark = pytest.mark.timeout(120)

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _session(account: Account, prompt: str) -> dict:
    with account.server.api(account.token) as api:
        response = api.post(f"/api/workspaces/{account.workspace['id']}/sessions", json={"prompt": prompt})
        assert response.status_code == 201, response.text
        return response.json()


def _turns(account: Account, task_id: str, count: int, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while (task := account.task(task_id))["turns"] < count:
        assert time.monotonic() < deadline, f"session {task_id} stayed at {task['turns']} turns"
        time.sleep(0.05)
    return task


def test_chat_answers_each_line_in_one_session_and_ends_it_at_the_end_of_input(account: Account) -> None:
    result = aicode(account.env(), "chat", "-w", "proj", stdin="@say one\n@say two\n")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    session_id = UUID_RE.search(lines[0]).group(0)
    assert lines[0].startswith(f"session on proj: {session_id} · claude · branch aicode/{session_id}")
    # Each prompt went in once the answer before it was printed; the typed text was not printed twice.
    assert lines.index("» @say one") < lines.index("one") < lines.index("» @say two") < lines.index("two")
    assert lines.count("one") == 1 and lines.count("two") == 1
    assert "✓ succeeded" in lines
    task = account.task(session_id)
    assert (task["kind"], task["status"], task["turns"]) == ("session", "succeeded", 2)
    with account.server.api(account.token) as api:
        events = api.get(f"/api/tasks/{session_id}/events").json()
    assert [e["type"] for e in events].count("agent.started") == 1  # one agent process for both prompts


def test_ctrl_c_during_a_turn_interrupts_it_and_the_next_line_goes_to_the_same_session(account: Account) -> None:
    process = subprocess.Popen([sys.executable, "-m", "aicode", "chat", "-w", "proj"], cwd=REPO, env=account.env(),
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write("@sleep 30\n")
    process.stdin.flush()
    seen = ""
    while "● agent started" not in seen:
        line = process.stdout.readline()
        assert line, f"the CLI ended early: {process.stderr.read() if process.stderr else ''}"
        seen += line
    time.sleep(1)  # the turn has started: the fake agent sleeps
    process.send_signal(signal.SIGINT)
    rest, stderr = process.communicate("@say after the interrupt\n", timeout=60)
    assert process.returncode == 0, stderr
    assert "interrupting the turn" in stderr and "Traceback" not in stderr
    lines = rest.splitlines()
    interrupted = lines.index("· the turn was interrupted; its work so far is committed as partial")
    assert interrupted < lines.index("» @say after the interrupt") < lines.index("after the interrupt")
    task = account.task(UUID_RE.search(seen).group(0))
    assert (task["status"], task["turns"]) == ("succeeded", 2)


def test_chat_session_attaches_to_a_running_session_again(account: Account) -> None:
    session = _session(account, "@say first answer")
    _turns(account, session["id"], 1)
    result = aicode(account.env(), "chat", "--session", session["id"][:8], stdin="@say second answer\n")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "second answer" in lines and "first answer" not in lines  # only what happened since
    task = account.task(session["id"])
    assert (task["status"], task["turns"]) == ("succeeded", 2)


def test_chat_session_starts_a_session_that_has_ended_again_with_the_next_prompt(account: Account) -> None:
    session = _session(account, "@say first answer")
    _turns(account, session["id"], 1)
    with account.server.api(account.token) as api:
        assert api.delete(f"/api/sessions/{session['id']}").status_code == 202
    account.wait(session["id"])
    result = aicode(account.env(), "chat", "--session", session["id"], stdin="@say back again\n")
    assert result.returncode == 0, result.stderr
    assert "your next prompt starts it again" in result.stderr
    lines = result.stdout.splitlines()
    assert "resumed session with 1 earlier turn(s)" in lines and "back again" in lines
    task = account.task(session["id"])
    assert (task["status"], task["turns"]) == ("succeeded", 2)


def test_chat_session_refuses_a_task_that_is_no_session(account: Account) -> None:
    task = account.wait(account.submit("@say a plain task")["id"])
    result = aicode(account.env(), "chat", "--session", task["id"])
    assert result.returncode == 1
    assert f"is not a live session: follow it with aicode logs -f {task['id']}" in result.stderr


def test_typed_text_stays_in_the_status_area_until_its_message_is_printed_once() -> None:
    view = EventView()
    assert view.lines({"type": "message.delta", "data": {"message_id": "msg_1", "text": "Reading the "}}) == []
    assert view.lines({"type": "message.delta", "data": {"message_id": "msg_1", "text": "module now"}}) == []
    console = Console(record=True, width=100, color_system=None)
    console.print(view.status_area())
    assert "Reading the module now" in console.export_text()
    whole = {"type": "message", "seq": 7, "data": {"message_id": "msg_1", "kind": "text", "text": "Reading the module now"}}
    assert [line.plain for line in view.lines(whole)] == ["Reading the module now"]
    assert view.typing() == ""
    view.lines({"type": "message.delta", "data": {"message_id": "msg_2", "text": "cut off by an interr"}})
    view.lines({"type": "turn.completed", "seq": 8, "data": {"status": "cancelled"}})
    assert view.typing() == ""
