"""How a turn ended, as the task's status and error: from why the agent stopped and what it reported."""

from __future__ import annotations

from typing import NamedTuple

from aicode.agents.events import TurnOutcome
from aicode.containers.runtime import ExecResult
from aicode.gateway.models import TurnGrant
from aicode.tasks.models import TaskRecord, TaskStatus
from aicode.workspaces.models import WorkspaceRecord

__all__ = ["Verdict", "judge"]

_LOST = ("this node lost its lease while the turn ran (it was cut off from the database); "
         "another node has ended the turn")


class Verdict(NamedTuple):
    status: TaskStatus
    error: str | None
    cause: str | None = None  # why a failed turn failed: agent, timeout, memory or budget


def judge(task: TaskRecord, workspace: WorkspaceRecord, outcome: TurnOutcome, result: ExecResult,
          ended_by: str | None, grant: TurnGrant | None) -> Verdict:
    """`ended_by`: None when the agent exited on its own, else lost, shutdown, cancelled or timeout."""
    if ended_by == "lost":
        return Verdict(TaskStatus.INTERRUPTED, _LOST)
    if ended_by == "shutdown":
        return Verdict(TaskStatus.INTERRUPTED, "the server stopped during the turn; the work so far is committed as partial")
    if ended_by == "cancelled":
        return Verdict(TaskStatus.CANCELLED, None)
    if ended_by == "timeout":
        return Verdict(TaskStatus.FAILED, (f"timed out after {task.timeout_s} s (the task's timeout_s); "
                                           "the work so far is committed as partial"), "timeout")
    if grant is not None and grant.refusal is not None and not outcome.ok:
        return Verdict(TaskStatus.FAILED, f"stopped: {grant.refusal}", "budget")
    if result.container_stopped and not result.oom_killed and not outcome.ok:
        return Verdict(TaskStatus.FAILED, "the task's container stopped under the agent (its Docker engine restarted, "
                                          "or it was stopped from outside); the work so far is committed as partial: "
                                          "send a follow-up to go on", "infrastructure")
    if result.oom_killed or (result.exit_code == 137 and not outcome.ok):
        memory = workspace.limits.get("memory_mb") or "the default"
        return Verdict(TaskStatus.FAILED, (f"the agent was killed by the container's memory limit ({memory} MB): "
                                           "raise limits.memory_mb on the workspace"), "memory")
    if outcome.ok:
        return Verdict(TaskStatus.SUCCEEDED, None)
    return Verdict(TaskStatus.FAILED, outcome.error or f"the agent failed (exit code {result.exit_code})", "agent")
