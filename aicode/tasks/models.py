"""The task as the engine sees it, and the statuses it moves through."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

__all__ = ["ACTIVE_STATUSES", "STATUSES", "TERMINAL_STATUSES", "NewTask", "TaskChange", "TaskEvent", "TaskRecord",
           "TaskStatus", "TurnUsage"]


class TaskStatus(StrEnum):
    """Where a task is: waiting for a node, running a turn, or how its latest turn ended. A str, so it
    compares equal to the status text in the database, the API and the events."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"


ACTIVE_STATUSES = frozenset({TaskStatus.QUEUED, TaskStatus.RUNNING})
TERMINAL_STATUSES = frozenset(
    {TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.INTERRUPTED}
)
STATUSES: tuple[str, ...] = tuple(status.value for status in TaskStatus)


@dataclass(frozen=True, slots=True)
class TaskRecord:
    id: UUID
    workspace_id: UUID
    user_id: UUID
    agent: str
    prompt: str
    model: str | None
    max_turns: int | None
    timeout_s: int
    base_branch: str
    branch: str
    base_commit: str | None
    head_commit: str | None
    session_id: str | None
    status: TaskStatus
    error: str | None
    pending_prompt: str | None
    turns: int
    cost_usd: float
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    last_seq: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    turn_user_id: UUID  # who asked for the pending or running turn: it runs with their credential
    max_cost_usd: float | None
    node: str | None  # the node that runs, or last ran, a turn of the task
    remote_branch: str | None = None  # where the task branch was pushed
    pushed_commit: str | None = None  # what the last push left there
    pull_request: dict[str, Any] | None = None  # {url, number, state, draft}
    origin: dict[str, Any] | None = None  # the forge comment that started the task
    kind: str = "task"  # "session": its container and agent process stay alive between prompts

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> TaskRecord:
        return cls(**{**row, "status": TaskStatus(row["status"])})


@dataclass(frozen=True, slots=True)
class NewTask:
    """A task as submitted, before its first turn."""

    id: UUID
    workspace_id: UUID
    user_id: UUID
    agent: str
    prompt: str
    model: str | None
    max_turns: int | None
    timeout_s: int
    base_branch: str
    branch: str
    max_cost_usd: float | None
    origin: dict[str, Any] | None = None  # the forge comment that asked for it
    kind: str = "task"  # or "session"


@dataclass(frozen=True, slots=True)
class TurnUsage:
    """What a turn adds to the task's totals."""

    turns: int = 0
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


@dataclass(frozen=True, slots=True)
class TaskChange:
    """What a status transition changes besides the status; the defaults change nothing."""

    started: bool = False  # started_at set (once)
    finished: bool = False  # finished_at now
    reopened: bool = False  # finished_at cleared (a follow-up)
    set_pending_prompt: bool = False  # pending_prompt replaced by `pending_prompt` (None clears it)
    pending_prompt: str | None = None
    turn_user_id: UUID | None = None  # who asks for the next turn (kept when None)
    head_commit: str | None = None  # kept when None
    session_id: str | None = None  # kept when None
    usage: TurnUsage = TurnUsage()


@dataclass(frozen=True, slots=True)
class TaskEvent:
    """One persisted event: `seq` starts at 1 per task and has no gaps."""

    task_id: UUID
    seq: int
    ts: datetime
    type: str
    data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "ts": self.ts.isoformat(), "type": self.type, "data": self.data}
