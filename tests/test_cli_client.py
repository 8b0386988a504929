"""The `aicode` client against a live server (real PostgreSQL, Docker and git; the fake agent):
sign-in, running and following tasks, workspaces, and how failures read."""

from __future__ import annotations

import json
import re
import signal
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.cli_support import (
    REPO,
    Account,
    CuttingProxy,
    aicode,
    assert_one_error_line,
    free_port,
    json_lines,
)
from tests.conftest import ADMIN, git

# The `live_server` and `account` fixtures.
pytest_plugins = ["tests.cli_fixtures"]
pytestmark = pytest.mark.timeout(120)

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


# -- login / logout ---------------------------------------------------------------------------------


def test_login_keeps_the_token_in_a_file_only_the_user_can_read(account: Account) -> None:
    env = account.env()
    del env["AICODE_TOKEN"], env["AICODE_SERVER"]
    result = aicode(env, "login", "--server", account.server.url, stdin="alice\nalice-password\n")
    assert result.returncode == 0, result.stderr
    path = account.home / "xdg" / "aicode" / "config.json"  # XDG_CONFIG_HOME, not ~/.config
    assert not (account.home / ".config").exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    stored = json.loads(path.read_text())
    assert stored["server"] == account.server.url and stored["username"] == "alice"
    assert stored["token"] and stored["token_id"]
    listed = aicode(env, "tasks", "--json")  # signed in by the file alone
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []

    assert aicode(env, "logout").returncode == 0
    assert "token" not in json.loads(path.read_text())
    revoked = httpx.get(f"{account.server.url}/api/me", headers={"Authorization": f"Bearer {stored['token']}"})
    assert revoked.status_code == 401


def test_login_with_a_wrong_password_fails_with_one_line(account: Account) -> None:
    env = account.env()
    del env["AICODE_TOKEN"]
    result = aicode(env, "login", stdin="alice\nnot-the-password\n")
    assert_one_error_line(result, 1, "run aicode login")
    assert not (account.home / "xdg" / "aicode" / "config.json").exists()


# -- run ----------------------------------------------------------------------------------------------


def test_run_streams_the_task_and_exits_0_when_it_succeeds(account: Account) -> None:
    result = aicode(account.env(), "run", "-w", "proj", "@say hello from the agent\n@write hello.txt hi\n@bash ls")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    task_id = UUID_RE.search(out).group(0)
    task = account.task(task_id)
    assert task["status"] == "succeeded"
    assert "hello from the agent" in out
    assert "→ Write hello.txt" in out and "→ Bash ls" in out, out
    assert "✓ succeeded" in out
    assert f"branch  {task['branch']}" in out
    assert f"commit  {task['head_commit']}" in out
    assert re.search(r"^ hello\.txt \| 1 \+$", out, re.M), out
    assert "1 file changed, 1 insertion(+), 0 deletions(-)" in out
    assert result.stderr == ""


def test_run_exits_1_with_one_line_when_the_task_fails(account: Account) -> None:
    result = aicode(account.env(), "run", "-w", "proj", "@api_error 400")
    assert_one_error_line(result, 1, "failed")
    assert "400" in result.stderr
    assert "✗ failed" in result.stdout


def test_run_agent_codex_sends_it_and_without_an_openai_key_the_task_fails_saying_so(account: Account) -> None:
    result = aicode(account.env(), "run", "--agent", "codex", "--model", "gpt-6.1-terra", "-w", "proj", "@say hi")
    assert_one_error_line(result, 1, "has no OpenAI key")
    task_id = UUID_RE.search(result.stdout).group(0)
    assert result.stdout.startswith(f"task on proj: {task_id} · codex (gpt-6.1-terra) · branch aicode/{task_id}")
    assert re.search(r"^failed · codex \(gpt-6\.1-terra\)", result.stdout, re.M), result.stdout
    task = account.task(task_id)
    assert (task["agent"], task["model"], task["status"]) == ("codex", "gpt-6.1-terra", "failed")


def test_agents_lists_each_agent_with_its_version_key_and_what_is_missing(account: Account) -> None:
    result = aicode(account.env(), "agents")
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["NAME", "VERSION", "KEY", "DEFAULT", "MODEL", "MISSING"]
    by_name = {row.split()[0]: row for row in rows}
    assert list(by_name) == ["claude", "codex", "gemini"]
    assert re.match(r"claude\s+2\.1\.0-fake\s+anthropic: yes\s+\(the CLI's\)\s+-$", by_name["claude"])
    assert re.match(r"codex\s+0\.\d+\.\d+\s+openai: no\s+gpt-6\.2-sol\s+no openai API key", by_name["codex"])
    assert "Settings → Model keys" in result.stderr
    listed = json.loads(aicode(account.env(), "agents", "-w", "proj", "--json").stdout)
    assert [(a["name"], a["credential"]) for a in listed] == [("claude", True), ("codex", False), ("gemini", False)]


def test_run_json_prints_every_event_then_the_task(account: Account) -> None:
    result = aicode(account.env(), "run", "--json", "-w", "proj", "@say one\n@write a.txt a\n@say two")
    assert result.returncode == 0, result.stderr
    *lines, task = json_lines(result.stdout)
    events = [e for e in lines if "seq" in e]  # the others are live-only text deltas
    assert [e["seq"] for e in events] == list(range(1, task["last_seq"] + 1))
    assert {e["type"] for e in lines if "seq" not in e} <= {"message.delta"}
    assert {"task.status", "message", "tool.call", "tool.result", "git.commit"} <= {e["type"] for e in events}
    assert task["status"] == "succeeded" and task["head_commit"]


def test_run_detach_prints_the_id_and_logs_follows_it_to_the_end(account: Account) -> None:
    submitted = aicode(account.env(), "run", "--detach", "-w", "proj", "@sleep 1\n@say later")
    assert submitted.returncode == 0, submitted.stderr
    task_id = submitted.stdout.strip()
    assert UUID_RE.fullmatch(task_id)
    followed = aicode(account.env(), "logs", "-f", task_id)
    assert followed.returncode == 0, followed.stderr
    assert "later" in followed.stdout and "✓ succeeded" in followed.stdout
    replay = aicode(account.env(), "logs", task_id[:8], "--json")  # an id prefix is enough
    assert replay.returncode == 0, replay.stderr
    *events, task = json_lines(replay.stdout)
    assert task["id"] == task_id and len(events) == task["last_seq"]


def test_logs_follow_resumes_after_a_dropped_connection_with_no_gap_or_duplicate(account: Account) -> None:
    says = "\n".join(f"@say line {i}" for i in range(12))
    task = account.submit(f"{says}\n@sleep 2\n@write late.txt x\n@say the end")
    proxy = CuttingProxy(target_port=int(account.server.url.rsplit(":", 1)[1]), cut_after=1500)
    proxy.start()
    try:
        result = aicode(account.env(AICODE_SERVER=proxy.url), "logs", "-f", "--json", task["id"])
    finally:
        proxy.stop()
    assert result.returncode == 0, result.stderr
    *lines, final = json_lines(result.stdout)
    events = [e for e in lines if "seq" in e]  # the others are live-only text deltas
    assert proxy.cuts == 1 and len(proxy.stream_requests) >= 2
    assert [e["seq"] for e in events] == list(range(1, final["last_seq"] + 1))
    # It resumed right after the last event it had printed before the cut.
    resumed_at = int(re.search(r"last-event-id: (\d+)", proxy.stream_requests[1], re.I).group(1))
    assert 1 <= resumed_at < final["last_seq"]
    assert "connection lost" in result.stderr


def _running_cli(account: Account, *args: str) -> tuple[subprocess.Popen[str], str, str]:
    """`aicode run …` started in the background, once it shows the task running; with the task id and
    what it printed so far."""
    process = subprocess.Popen([sys.executable, "-m", "aicode", *args], cwd=REPO, env=account.env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    seen = ""
    while "● running" not in seen:
        line = process.stdout.readline()
        assert line, f"the CLI ended early: {process.stderr.read() if process.stderr else ''}"
        seen += line
    return process, UUID_RE.search(seen).group(0), seen


def test_ctrl_c_detaches_and_says_how_to_follow_again(account: Account) -> None:
    process, task_id, _ = _running_cli(account, "run", "-w", "proj", "@sleep 30")
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=20)
    assert process.returncode == 130
    assert f"aicode logs -f {task_id}" in stderr and "Traceback" not in stderr
    assert account.task(task_id)["status"] == "running"
    assert aicode(account.env(), "cancel", task_id).returncode == 0
    assert account.wait(task_id)["status"] == "cancelled"


def test_ctrl_c_with_cancel_on_interrupt_cancels_the_task(account: Account) -> None:
    process, task_id, seen = _running_cli(account, "run", "--cancel-on-interrupt", "-w", "proj", "@sleep 30")
    process.send_signal(signal.SIGINT)
    rest, stderr = process.communicate(timeout=40)
    assert process.returncode == 1, stderr
    assert account.task(task_id)["status"] == "cancelled"
    # Watching went on after the cancel without showing an event twice.
    statuses = re.findall(r"^[●✓✗■⚠] (\w+)", seen + rest, re.M)
    assert statuses == ["queued", "running", "cancelled"], seen + rest


# -- tasks and workspaces -----------------------------------------------------------------------------


def test_tasks_lists_and_filters_by_workspace_and_status(account: Account) -> None:
    done = account.wait(account.submit("@say done")["id"])
    failed = account.wait(account.submit("@exit 3")["id"])
    result = aicode(account.env(), "tasks", "-w", "proj", "--status", "failed", "--json")
    assert result.returncode == 0, result.stderr
    assert [t["id"] for t in json.loads(result.stdout)] == [failed["id"]]
    table = aicode(account.env(), "tasks")
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["ID", "STATUS", "WORKSPACE", "AGENT", "CREATED", "COST", "PROMPT"]
    assert [row.split()[:4] for row in rows] == [[failed["id"], "failed", "proj", "claude"],
                                                 [done["id"], "succeeded", "proj", "claude"]]


def test_workspace_add_waits_for_the_clone_then_list_and_sync_show_it(account: Account, repos_root: Path) -> None:
    other = repos_root / "other"
    other.mkdir()
    git(other, "init", "-q", "-b", "main")
    (other / "x.txt").write_text("x\n")
    git(other, "add", ".")
    git(other, "commit", "-q", "-m", "first")
    added = aicode(account.env(), "workspace", "add", "other", str(other), "--branch", "main")
    assert added.returncode == 0, added.stderr
    assert "workspace other added: ready (default branch main)" in added.stdout
    listed = aicode(account.env(), "workspace", "list", "--json")
    assert {w["name"]: w["status"] for w in json.loads(listed.stdout)} == {"proj": "ready", "other": "ready"}
    plain = aicode(account.env(), "workspace", "list").stdout.splitlines()
    assert plain[0].split()[:4] == ["NAME", "ROLE", "STATUS", "BRANCH"] and len(plain) == 3
    assert plain[1].split()[:2] == ["other", "owner"]
    synced = aicode(account.env(), "workspace", "sync", "other")
    assert synced.returncode == 0 and "synced: ready" in synced.stdout


def test_workspace_share_gives_a_member_a_role_and_members_lists_them(account: Account) -> None:
    with httpx.Client(base_url=account.server.url, timeout=30) as http:
        jwt = http.post("/api/auth/login", json={"username": ADMIN[0], "password": ADMIN[1]}).json()["access_token"]
        created = http.post("/api/admin/users", json={"username": "bob", "password": "bob-password"},
                            headers={"Authorization": f"Bearer {jwt}"})
        assert created.status_code == 201, created.text
    shared = aicode(account.env(), "workspace", "share", "proj", "bob", "--role", "viewer")
    assert shared.returncode == 0, shared.stderr
    assert shared.stdout.strip() == "bob is viewer in proj"
    members = json.loads(aicode(account.env(), "workspace", "members", "proj", "--json").stdout)
    assert [(m["username"], m["role"]) for m in members] == [("alice", "owner"), ("bob", "viewer")]
    last_owner = aicode(account.env(), "workspace", "unshare", "proj", "alice")
    assert_one_error_line(last_owner, 1, "at least one owner")
    assert aicode(account.env(), "workspace", "unshare", "proj", "bob").returncode == 0
    bad_role = aicode(account.env(), "workspace", "share", "proj", "bob", "--role", "boss")
    assert bad_role.returncode == 2


def test_workspace_add_of_a_path_the_server_refuses_fails_with_one_line(account: Account, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    result = aicode(account.env(), "workspace", "add", "bad", str(outside))
    assert_one_error_line(result, 2, "is outside the folders this server allows")


# -- errors ---------------------------------------------------------------------------------------------


def test_an_unreachable_server_is_one_line_with_what_to_do(account: Account) -> None:
    result = aicode(account.env(AICODE_SERVER=f"http://127.0.0.1:{free_port()}"), "tasks")
    assert_one_error_line(result, 1, "cannot reach the aicode server at http://127.0.0.1:")
    assert "set AICODE_SERVER or run aicode login --server URL" in result.stderr


def test_a_revoked_or_wrong_token_says_to_log_in(account: Account) -> None:
    result = aicode(account.env(AICODE_TOKEN="aic_not-a-real-token"), "run", "-w", "proj", "hi")
    assert_one_error_line(result, 1, "not signed in or token revoked: run aicode login")


def test_an_unknown_workspace_is_a_usage_error_naming_the_known_ones(account: Account) -> None:
    result = aicode(account.env(), "run", "-w", "nope", "hi")
    assert_one_error_line(result, 2, "no workspace named 'nope' (yours: proj)")


def test_an_unknown_task_answers_404_as_one_line(account: Account) -> None:
    result = aicode(account.env(), "logs", "00000000-0000-4000-8000-000000000000")
    assert_one_error_line(result, 1, "no task with id 00000000-0000-4000-8000-000000000000")


def test_bad_usage_exits_2(account: Account) -> None:
    assert aicode(account.env(), "run", "hi").returncode == 2  # no -w
    assert aicode(account.env(), "tasks", "--status", "sleeping").returncode == 2
    wrong_agent = aicode(account.env(), "run", "--agent", "gpt", "-w", "proj", "hi")
    assert wrong_agent.returncode == 2 and "invalid choice: 'gpt'" in wrong_agent.stderr



# -- on a terminal ----------------------------------------------------------------------------------


def _on_a_terminal(env: dict[str, str], *args: str) -> tuple[int, str]:
    """Run the CLI with a pseudo-terminal as stdin, stdout and stderr; what it wrote, escapes and all."""
    import os
    import pty

    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "aicode", *args], cwd=REPO, stdin=follower, stdout=follower,
                               stderr=follower, env={**env, "TERM": "xterm-256color", "COLUMNS": "120"})
    os.close(follower)
    output = bytearray()
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the process closed the terminal
            break
        if not chunk:
            break
        output.extend(chunk)
    os.close(leader)
    return process.wait(timeout=60), output.decode(errors="replace")


def test_a_terminal_gets_colour_and_a_live_status_line_unless_no_color(account: Account) -> None:
    code, shown = _on_a_terminal(account.env(), "run", "-w", "proj", "@write a.txt a\n@sleep 1\n@say done")
    assert code == 0, shown
    assert "\x1b[32m" in shown  # green: the diffstat's +, the ✓
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown)
    assert re.search(r"running · \d+\.\ds · [\d,.k]+ in / [\d,.k]+ out tokens · \$", text), text
    code, plain = _on_a_terminal(account.env(), "run", "--no-color", "-w", "proj", "@say plain")
    assert code == 0, plain
    assert not re.search(r"\x1b\[[0-9;]*m", plain.replace("\x1b[?25l", "").replace("\x1b[?25h", "")), plain
    assert "plain" in plain


def test_diff_on_a_terminal_is_coloured_and_goes_through_the_pager(account: Account) -> None:
    task = account.wait(account.submit("@write paged.txt hello")["id"])
    code, shown = _on_a_terminal(account.env(PAGER="sed s/^/PAGED:/"), "diff", task["id"])
    assert code == 0, shown
    assert "PAGED:\x1b[32m+hello" in shown
    assert "PAGED:\x1b[1m+++ b/paged.txt" in shown
