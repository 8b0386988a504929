"""Request and response shapes of the task endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from aicode.workspaces.schemas import BranchName

__all__ = ["FileEntry", "FollowUp", "SessionCreate", "Task", "TaskCreate"]

Prompt = Annotated[str, msgspec.Meta(min_length=1, max_length=100_000)]
Model = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,99}$")]
# The agent CLIs this server has drivers for (aicode.agents.registry), each on its provider's API.
AgentName = Literal["claude", "codex", "gemini"]


class TaskCreate(msgspec.Struct, forbid_unknown_fields=True):
    prompt: Prompt
    agent: AgentName = "claude"
    model: Model | None = None
    base_branch: BranchName | None = None
    max_turns: Annotated[int, msgspec.Meta(ge=1, le=1000)] | None = None
    timeout_s: Annotated[int, msgspec.Meta(ge=1, le=7 * 24 * 3600)] | None = None
    max_cost_usd: Annotated[float, msgspec.Meta(gt=0, le=100_000)] | None = None


class SessionCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A live session: its first prompt is optional (the session then waits for one)."""

    prompt: Annotated[str, msgspec.Meta(max_length=100_000)] | None = None
    agent: AgentName = "claude"
    model: Model | None = None
    base_branch: BranchName | None = None
    max_turns: Annotated[int, msgspec.Meta(ge=1, le=1000)] | None = None
    timeout_s: Annotated[int, msgspec.Meta(ge=1, le=7 * 24 * 3600)] | None = None
    max_cost_usd: Annotated[float, msgspec.Meta(gt=0, le=100_000)] | None = None

    def as_task(self) -> TaskCreate:
        return TaskCreate(prompt=(self.prompt or "").strip(), agent=self.agent, model=self.model,
                          base_branch=self.base_branch, max_turns=self.max_turns, timeout_s=self.timeout_s,
                          max_cost_usd=self.max_cost_usd)


class FollowUp(msgspec.Struct, forbid_unknown_fields=True):
    prompt: Prompt
    # A follow-up resumes the task's own agent session; naming another agent is refused, not switched.
    agent: AgentName | None = None


class Task(msgspec.Struct):
    id: UUID
    workspace_id: UUID
    user_id: UUID
    agent: str
    status: str
    prompt: str
    model: str | None
    max_turns: int | None
    timeout_s: int
    base_branch: str
    branch: str
    base_commit: str | None
    head_commit: str | None
    session_id: str | None
    error: str | None
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
    max_cost_usd: float | None
    turn_user_id: UUID
    node: str | None  # the node that runs, or last ran, its latest turn
    remote_branch: str | None = None  # the branch on the workspace's remote it was pushed to
    pushed_commit: str | None = None
    pull_request: TaskPullRequest | None = None
    origin: TaskOrigin | None = None  # the forge comment that started it
    kind: str = "task"  # "session": a live session (its agent stays alive between prompts)


class TaskPullRequest(msgspec.Struct):
    url: str
    number: int
    state: str  # open, draft, closed or merged
    draft: bool = False


class TaskOrigin(msgspec.Struct):
    kind: str  # github or gitlab
    repo: str
    number: int
    on_pull_request: bool
    login: str
    comment_url: str | None = None


class FileEntry(msgspec.Struct):
    path: str
    status: str
    additions: int
    deletions: int
