"""Queued turns, handed out fairly: round robin across the people who asked for them, within limits.

One person's fifty queued tasks must not keep another's single task waiting behind them. Each
requester has their own first-in-first-out line; `take` serves the lines in turn, skipping a line
whose requester (or whose next task's workspace) already runs as many turns as allowed.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

__all__ = ["FairQueue", "QueuedTurn"]


@dataclass(frozen=True, slots=True)
class QueuedTurn:
    task_id: UUID
    user_id: UUID  # who asked for the turn
    workspace_id: UUID


class FairQueue:
    def __init__(self) -> None:
        self._lines: OrderedDict[UUID, deque[QueuedTurn]] = OrderedDict()
        self._changed = asyncio.Condition()
        # When each requester was last served: the one served longest ago (or never) goes first.
        self._served: dict[UUID, int] = {}
        self._clock = 0

    def __len__(self) -> int:
        return sum(len(line) for line in self._lines.values())

    def queued_by(self, user_id: UUID) -> int:
        return len(self._lines.get(user_id, ()))

    async def put(self, turn: QueuedTurn) -> None:
        if any(queued.task_id == turn.task_id for queued in self._lines.get(turn.user_id, ())):
            return  # already waiting (a follow-up re-sent while queued)
        self._lines.setdefault(turn.user_id, deque()).append(turn)
        await self.wake()

    def discard(self, task_id: UUID) -> None:
        """Forget a turn that will not run (cancelled while it waited)."""
        for user_id, line in list(self._lines.items()):
            kept = deque(turn for turn in line if turn.task_id != task_id)
            if len(kept) != len(line):
                if kept:
                    self._lines[user_id] = kept
                else:
                    del self._lines[user_id]

    async def wake(self) -> None:
        """Something changed that may make a waiting turn eligible (a put, a turn that ended)."""
        async with self._changed:
            self._changed.notify_all()

    async def take(self, eligible: Callable[[QueuedTurn], bool]) -> QueuedTurn:
        """The next turn `eligible` accepts, serving requesters in turn; waits until there is one."""
        async with self._changed:
            while (turn := self._next(eligible)) is None:
                await self._changed.wait()
            return turn

    def _next(self, eligible: Callable[[QueuedTurn], bool]) -> QueuedTurn | None:
        ready = [user_id for user_id, line in self._lines.items() if line and eligible(line[0])]
        if not ready:
            return None
        user_id = min(ready, key=lambda user: self._served.get(user, -1))  # stable: arrival order breaks ties
        line = self._lines[user_id]
        turn = line.popleft()
        if not line:
            del self._lines[user_id]
        self._clock += 1
        self._served[user_id] = self._clock
        return turn
