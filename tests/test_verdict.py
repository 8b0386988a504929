"""How a turn is judged, alone: why the agent stopped and what it reported → the task's status and error."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from aicode.agents.events import TurnOutcome
from aicode.containers.runtime import ExecResult
from aicode.tasks.models import TaskRecord, TaskStatus
from aicode.tasks.verdict import judge
from aicode.workspaces.models import WorkspaceRecord

NOW = datetime.now(UTC)
TASK = TaskRecord.from_row({
    "id": uuid.uuid4(), "workspace_id": uuid.uuid4(), "user_id": uuid.uuid4(), "agent": "claude", "prompt": "p",
    "model": None, "max_turns": None, "timeout_s": 90, "base_branch": "main", "branch": "aicode/x",
    "base_commit": None, "head_commit": None, "session_id": None, "status": "running", "error": None,
    "pending_prompt": "p", "turns": 0, "cost_usd": 0.0, "input_tokens": 0, "output_tokens": 0,
    "cache_read_tokens": 0, "cache_write_tokens": 0, "last_seq": 0, "created_at": NOW, "started_at": NOW,
    "finished_at": None, "updated_at": NOW, "turn_user_id": uuid.uuid4(), "max_cost_usd": None, "node": "n1",
})
WORKSPACE = WorkspaceRecord(id=TASK.workspace_id, owner_id=TASK.user_id, name="w", repo_url="/r", repo_token_enc=None,
                            default_branch="main", image=None, limits={"memory_mb": 512}, network=None,
                            status="ready", error=None, last_synced_at=NOW, created_at=NOW, updated_at=NOW)


def outcome(ok: bool, error: str | None = None) -> TurnOutcome:
    return TurnOutcome(ok=ok, session_id="s", result_text=None, num_turns=1, duration_ms=1, cost_usd=0.0,
                       input_tokens=0, output_tokens=0, cache_read_tokens=0, cache_write_tokens=0, error=error)


@pytest.mark.parametrize(("ended_by", "status", "says"), [
    ("lost", TaskStatus.INTERRUPTED, "lost its lease"),
    ("shutdown", TaskStatus.INTERRUPTED, "server stopped"),
    ("cancelled", TaskStatus.CANCELLED, None),
    ("timeout", TaskStatus.FAILED, "timed out after 90 s"),
])
def test_why_the_agent_was_stopped_decides_before_what_it_reported(ended_by: str, status: TaskStatus,
                                                                    says: str | None) -> None:
    got_status, error, _ = judge(TASK, WORKSPACE, outcome(True), ExecResult(exit_code=0), ended_by, None)
    assert got_status == status
    assert (error is None) if says is None else (error is not None and says in error)


def test_an_agent_that_exited_on_its_own_is_judged_by_its_outcome_and_exit() -> None:
    assert judge(TASK, WORKSPACE, outcome(True), ExecResult(exit_code=0), None, None) == (TaskStatus.SUCCEEDED, None,
                                                                                          None)
    assert judge(TASK, WORKSPACE, outcome(False, "API Error: 500"), ExecResult(exit_code=1), None, None) == (
        TaskStatus.FAILED, "API Error: 500", "agent")
    status, error, cause = judge(TASK, WORKSPACE, outcome(False), ExecResult(exit_code=137), None, None)
    assert cause == "memory"
    assert status == TaskStatus.FAILED and error is not None and "memory limit (512 MB)" in error
    status, error, cause = judge(TASK, WORKSPACE, outcome(False), ExecResult(exit_code=3), None, None)
    assert cause == "agent"
    assert status == TaskStatus.FAILED and error == "the agent failed (exit code 3)"
