"""A task's turn commits, read from its `git.commit` events: what each turn that changed files committed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from aicode.tasks.models import TaskEvent

__all__ = ["TURN_EVENT_TYPES", "TurnCommit", "turn_commits"]

# The events that say where the task branch moved: a turn's commit, or a rebase that rewrote them all.
TURN_EVENT_TYPES = ("git.commit", "git.rebase")


@dataclass(frozen=True, slots=True)
class TurnCommit:
    """The `number`th turn that committed: its changes are `parent`..`commit`."""

    number: int
    commit: str
    parent: str
    files_changed: int
    additions: int
    deletions: int
    partial: bool
    ts: datetime


def turn_commits(base_commit: str | None, events: Iterable[TaskEvent]) -> list[TurnCommit]:
    """The turn commits on the task branch now, oldest first, from its `git.commit` and `git.rebase` events.

    A rebase rewrote every commit before it, so only the turns after the last one are on the branch; the
    first of those starts from where the rebase left the branch."""
    turns: list[TurnCommit] = []
    parent = base_commit
    for event in events:
        data = event.data
        if event.type == "git.rebase":
            turns = []
            parent = data.get("head_commit") or data.get("onto") or parent
        elif event.type == "git.commit" and isinstance(data.get("commit"), str) and parent is not None:
            turns.append(TurnCommit(
                number=len(turns) + 1, commit=data["commit"], parent=parent,
                files_changed=int(data.get("files_changed") or 0), additions=int(data.get("additions") or 0),
                deletions=int(data.get("deletions") or 0), partial=bool(data.get("partial")), ts=event.ts))
            parent = data["commit"]
    return turns
