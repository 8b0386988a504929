"""Following a task's events over SSE, surviving dropped connections without gap or duplicate; the
live-only events (text as it is typed, a session waiting) pass through as they come."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from aicode.cli.client.errors import ServerUnreachable
from aicode.cli.client.http import ApiClient, unreachable
from aicode.tasks.models import TERMINAL_STATUSES

__all__ = ["EventFollower", "parse_sse", "replay_events"]

_PAGE = 1000
_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 3.0, 5.0)
# How long the server may stay unreachable before following gives up.
_GIVE_UP_S = 60.0


def parse_sse(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """Each complete SSE message's data as JSON; a message cut off by the end of the stream is dropped
    (it is sent again after reconnecting, since its seq was never seen)."""
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield json.loads("\n".join(data))
            data = []
        elif line.startswith("data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(" ") else value)
        # id:, event:, retry: and comments add nothing: the data carries seq and type.


def replay_events(api: ApiClient, task_id: str, after: int = 0) -> Iterator[dict[str, Any]]:
    """Stored events after `after`, oldest first, page by page (no live part)."""
    while True:
        page = api.get(f"/api/tasks/{task_id}/events", after=after, limit=_PAGE)
        yield from page
        if len(page) < _PAGE:
            return
        after = page[-1]["seq"]


class EventFollower:
    """Yields a task's events in seq order until it has ended and every event was yielded, and between
    them the live-only events (no seq, never replayed: one missed during a drop is gone).

    The stream is resumed with `Last-Event-ID` = the seq of the last event the caller took, so an
    event is shown exactly once even if a connection drops in the middle of it. `final_task` holds
    the task as it was when following ended.
    """

    def __init__(self, api: ApiClient, task_id: str, after: int = 0,
                 on_reconnect: Callable[[str], None] | None = None) -> None:
        self._api = api
        self._task_id = task_id
        self.last_seq = after
        self.final_task: dict[str, Any] | None = None
        self._on_reconnect = on_reconnect or (lambda _: None)
        # When the server last answered: following gives up only after it has been silent this long
        # *and* unreachable (a quiet agent on an open stream is no reason to give up).
        self._last_contact = time.monotonic()

    def events(self) -> Iterator[dict[str, Any]]:
        failures = 0
        while True:
            try:
                for event in self._connection():
                    yield event
                    self.last_seq = event.get("seq", self.last_seq)
                    failures = 0
                reason = "the server closed the stream"
            except (httpx.TransportError, ServerUnreachable) as exc:
                reason = str(exc) or type(exc).__name__
            if self._settled():
                return
            if time.monotonic() - self._last_contact > _GIVE_UP_S:
                raise unreachable(self._api.server, RuntimeError(reason))
            self._on_reconnect(f"connection lost ({reason}); resuming after event {self.last_seq}")
            time.sleep(_BACKOFF_S[min(failures, len(_BACKOFF_S) - 1)])
            failures += 1

    def _connection(self) -> Iterator[dict[str, Any]]:
        headers = {"Accept": "text/event-stream", "Last-Event-ID": str(self.last_seq)}
        with self._api.stream(f"/api/tasks/{self._task_id}/events", headers) as response:
            self._last_contact = time.monotonic()
            for event in parse_sse(response.iter_lines()):
                seq = event.get("seq")
                if seq is None and isinstance(event.get("type"), str):
                    yield event  # live-only
                    continue
                if not isinstance(seq, int) or seq <= self.last_seq:
                    continue  # seen already: never show an event twice
                if seq > self.last_seq + 1:
                    yield from self._missing(seq)
                yield event

    def _missing(self, before: int) -> Iterator[dict[str, Any]]:
        """Fill a hole in the stream from the stored events: never skip one."""
        for event in replay_events(self._api, self._task_id, self.last_seq):
            if event["seq"] >= before:
                return
            yield event

    def _settled(self) -> bool:
        """Whether the stream ended because the task did (not because the connection broke)."""
        try:
            task = self._api.get(f"/api/tasks/{self._task_id}")
        except ServerUnreachable:
            return False
        self._last_contact = time.monotonic()
        self.final_task = task
        return task["status"] in TERMINAL_STATUSES and task["last_seq"] <= self.last_seq
