"""How a turn ended, as the task's status and error: from why the agent stopped and what it reported."""

from __future__ import annotations

from aicode.agents.events import TurnOutcome
from aicode.containers.runtime import ExecResult
from aicode.gateway.models import TurnGrant
from aicode.tasks.models import TaskRecord, TaskStatus
from aicode.workspaces.models import WorkspaceRecord

__all__ = ["judge"]

_LOST = ("this node lost its lease while the turn ran (it was cut off from the database); "
         "another node has ended the turn")


def judge(task: TaskRecord, workspace: WorkspaceRecord, outcome: TurnOutcome, result: ExecResult,
          ended_by: str | None, grant: TurnGrant | None) -> tuple[TaskStatus, str | None]:
    """`ended_by`: None when the agent exited on its own, else lost, shutdown, cancelled or timeout."""
    if ended_by == "lost":
        return TaskStatus.INTERRUPTED, _LOST
    if ended_by == "shutdown":
        return TaskStatus.INTERRUPTED, "the server stopped during the turn; the work so far is committed as partial"
    if ended_by == "cancelled":
        return TaskStatus.CANCELLED, None
    if ended_by == "timeout":
        return TaskStatus.FAILED, (f"timed out after {task.timeout_s} s (the task's timeout_s); "
                                   "the work so far is committed as partial")
    if grant is not None and grant.refusal is not None and not outcome.ok:
        return TaskStatus.FAILED, f"stopped: {grant.refusal}"
    if result.oom_killed or (result.exit_code == 137 and not outcome.ok):
        memory = workspace.limits.get("memory_mb") or "the default"
        return TaskStatus.FAILED, (f"the agent was killed by the container's memory limit ({memory} MB): "
                                   "raise limits.memory_mb on the workspace")
    if outcome.ok:
        return TaskStatus.SUCCEEDED, None
    return TaskStatus.FAILED, outcome.error or f"the agent failed (exit code {result.exit_code})"
