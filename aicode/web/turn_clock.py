"""How long a task's turns ran, and how many model turns they took, from its events.

"Elapsed" on the task page is the turns' run time, not the wall time since submit: idle time between
a turn's end and the next follow-up is nobody's work. static/task.js goes on from where this stops
(`TurnClock.seq`) with the same rules as events arrive.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

__all__ = ["TurnClock", "TurnMark", "turn_clock"]

_TERMINAL = frozenset({"succeeded", "failed", "cancelled", "interrupted"})


@dataclass(frozen=True, slots=True)
class TurnMark:
    """An event that starts or ends a turn: a `task.status`, a `turn.completed` or a follow-up notice."""

    seq: int
    ts: datetime
    type: str
    status: str | None = None
    code: str | None = None
    num_turns: int | None = None


@dataclass(frozen=True, slots=True)
class TurnClock:
    """The run time of the finished turns, when the running one (if any) started, and what the rules
    need to go on: whether the task is running and how many prompts of a session await their turn."""

    seq: int = 0
    run_s: float = 0.0
    open_since: datetime | None = None
    running: bool = False
    waiting: int = 0
    model_turns: int = 0

    def seconds(self, now: datetime) -> float:
        """The turns' run time up to `now`, the running turn's so far included."""
        running = (now - self.open_since).total_seconds() if self.open_since is not None else 0.0
        return self.run_s + max(0.0, running)

    def as_data(self, now: datetime) -> dict[str, Any]:
        """For the page's `data-clock` (with the server's clock, so the browser can allow for its own)."""
        return {"seq": self.seq, "run_s": self.run_s, "running": self.running, "waiting": self.waiting,
                "open_since": self.open_since.isoformat() if self.open_since else None,
                "model_turns": self.model_turns, "now": now.isoformat()}


def _closed(clock: TurnClock, ts: datetime) -> TurnClock:
    if clock.open_since is None:
        return clock
    return replace(clock, run_s=clock.run_s + max(0.0, (ts - clock.open_since).total_seconds()), open_since=None)


def _step(clock: TurnClock, mark: TurnMark, session: bool) -> TurnClock:
    # A task's turn runs from "running" to its final status (commit included); a session stays running
    # between prompts, so each of its turns ends with its `turn.completed` and the next starts with a prompt.
    if mark.type == "task.status" and mark.status == "running":
        opens = not session or clock.waiting > 0
        return replace(clock, running=True, open_since=clock.open_since or (mark.ts if opens else None))
    if mark.type == "task.status" and mark.status in _TERMINAL:
        return replace(_closed(clock, mark.ts), running=False, waiting=0)
    if mark.type == "notice" and mark.code == "follow_up":
        opens = clock.running and clock.open_since is None
        return replace(clock, waiting=clock.waiting + 1, open_since=mark.ts if opens else clock.open_since)
    if mark.type == "turn.completed":
        clock = replace(clock, model_turns=clock.model_turns + max(0, mark.num_turns or 0))
        if session:
            clock = replace(_closed(clock, mark.ts), waiting=max(0, clock.waiting - 1))
            if clock.waiting and clock.running:
                clock = replace(clock, open_since=mark.ts)
    return clock


def turn_clock(marks: Iterable[TurnMark], *, session: bool, first_prompt: bool) -> TurnClock:
    """The clock after `marks` (in seq order); a session's first prompt, when it has one, awaits its turn."""
    clock = TurnClock(waiting=1 if session and first_prompt else 0)
    for mark in marks:
        clock = replace(_step(clock, mark, session), seq=mark.seq)
    return clock
