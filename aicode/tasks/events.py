"""The event bus: store events, publish them through Litestar channels, follow a task's stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
import structlog
from litestar.channels import ChannelsPlugin, Subscriber

from aicode.db.errors import is_connection_failure
from aicode.db.pool import Database
from aicode.metrics.instruments import EVENTS
from aicode.tasks.models import TERMINAL_STATUSES, TaskEvent
from aicode.tasks.repo import TaskEventRepo

__all__ = ["LIST_CHANNEL", "EventBatch", "TaskEventBus", "WireEvent", "task_channel"]

_PAGE = 500
# A follower with no live event for this long reads the database (see `follow`).
_QUIET_POLL_S = 3.0
# Live events a follower may have waiting; beyond it, it catches up from the database.
_LIVE_BACKLOG = 2000
# How long an event write waits out an unreachable database before the turn gives up.
_OUTAGE_S = 60.0

log = structlog.get_logger(__name__)


# Every task's status changes (a new task is one: it is queued), for pages whose task lists update live.
LIST_CHANNEL = "tasks:list"


def task_channel(task_id: UUID) -> str:
    return f"task:{task_id}"


@dataclass(frozen=True, slots=True)
class WireEvent:
    """An event as streamed: its JSON text is made once per event, not once per reader."""

    seq: int
    type: str
    json: str

    @classmethod
    def of(cls, event: TaskEvent) -> WireEvent:
        return cls(event.seq, event.type, json.dumps(event.to_json(), separators=(",", ":")))

    @classmethod
    def live(cls, kind: str, data: dict[str, Any]) -> WireEvent:
        """An event for live viewers only (text as it is typed, a session ready for its next prompt): never
        stored, so it has no seq (0 here, left out of its JSON) and is absent from any replay."""
        return cls(0, kind, json.dumps({"type": kind, "data": data}, separators=(",", ":")))

    @property
    def ephemeral(self) -> bool:
        return self.seq == 0

    def encode(self) -> bytes:
        # "<seq> <type> <json>": readers learn seq and type without parsing the JSON.
        return f"{self.seq} {self.type} {self.json}".encode()

    @classmethod
    def decode(cls, raw: bytes) -> WireEvent:
        seq, kind, body = raw.decode().split(" ", 2)
        return cls(int(seq), kind, body)

    def ends_task(self) -> bool:
        return self.type == "task.status" and json.loads(self.json)["data"].get("status") in TERMINAL_STATUSES


class EventBatch:
    """Events added inside one transaction; `conn` lets the caller change the task in the same one."""

    def __init__(self, repo: TaskEventRepo, conn: asyncpg.Connection, task_id: UUID | None) -> None:
        self.conn = conn
        self.stored: list[TaskEvent] = []
        self._repo = repo
        self._task_id = task_id

    async def add(self, events: list[tuple[str, dict[str, Any]]], *, task_id: UUID | None = None) -> None:
        """Store `events` as the batch's task's (or, in a batch opened without one, `task_id`'s)."""
        target = task_id or self._task_id
        if target is None:
            raise ValueError("which task's events: the batch has no task and none was given")
        self.stored.extend(await self._repo.append(self.conn, target, events))


class TaskEventBus:
    """Writers append and publish; readers `follow`: replay from the database, then live, no gap, no duplicate."""

    def __init__(self, db: Database, repo: TaskEventRepo, channels: ChannelsPlugin) -> None:
        self._db = db
        self._repo = repo
        self._channels = channels

    @asynccontextmanager
    async def batch(self, task_id: UUID | None = None) -> AsyncIterator[EventBatch]:
        """A transaction for a task's state change and its events; they are published once it commits.
        Without `task_id`, for a change that picks its task inside the transaction (a claim)."""
        async with self._db.transaction() as conn:
            batch = EventBatch(self._repo, conn, task_id)
            yield batch
        EVENTS.inc(len(batch.stored))
        self._publish(batch.stored)

    async def emit(self, task_id: UUID, events: list[tuple[str, dict[str, Any]]]) -> list[TaskEvent]:
        """Store and publish `events`. While the database is unreachable (a restart, a fail-over) the
        write is tried again for up to a minute: a turn's output is not lost to a short outage."""
        delay, waited = 0.25, 0.0
        while True:
            try:
                async with self.batch(task_id) as batch:
                    await batch.add(events)
                return batch.stored
            except Exception as exc:
                if not is_connection_failure(exc) or waited >= _OUTAGE_S:
                    raise
                log.warning("events.write_retried", task_id=str(task_id), error=exc.__class__.__name__,
                            waited_s=round(waited, 1))
                await asyncio.sleep(delay)
                waited += delay
                delay = min(delay * 2, 4.0)

    def broadcast(self, task_id: UUID, events: list[tuple[str, dict[str, Any]]]) -> None:
        """Send live-only events to whoever follows the task now; nothing is stored (see `WireEvent.live`)."""
        if events:
            lines = [WireEvent.live(kind, data).encode() for kind, data in events]
            self._channels.publish(b"\n".join(lines), task_channel(task_id))

    def _publish(self, events: list[TaskEvent]) -> None:
        # One message per task per batch, however many events it holds: a busy agent's events go out
        # in few publishes (Redis is sent them one publish at a time).
        by_task: dict[UUID, list[bytes]] = {}
        for event in events:
            by_task.setdefault(event.task_id, []).append(WireEvent.of(event).encode())
        for task_id, lines in by_task.items():
            self._channels.publish(b"\n".join(lines), task_channel(task_id))
        changed = {event.task_id: event.data.get("status") for event in events if event.type == "task.status"}
        for task_id, status in changed.items():
            self._channels.publish(f"{task_id} {status}".encode(), LIST_CHANNEL)

    async def list_changes(self) -> AsyncIterator[tuple[UUID, str] | None]:
        """(task id, status) of every task whose status changes from now on, on any node, as it happens; first
        None, once subscribed: nothing published after it is missed."""
        async with self._channels.start_subscription([LIST_CHANNEL]) as subscriber:
            yield None
            async for raw in subscriber.iter_events():
                task_id, _, status = raw.decode().partition(" ")
                yield UUID(task_id), status

    async def history(self, task_id: UUID, *, after: int, limit: int, before: int | None = None,
                      latest: bool = False) -> list[TaskEvent]:
        if latest:
            return await self._repo.list_latest(task_id, after=after, before=before, limit=limit)
        return await self._repo.list(task_id, after=after, before=before, limit=limit)

    async def of_types(self, task_id: UUID, event_types: tuple[str, ...]) -> list[TaskEvent]:
        """Every stored event of the task whose type is one of `event_types`, oldest first."""
        return await self._repo.of_types(task_id, event_types)

    async def follow(
        self, task_id: UUID, after: int, is_settled: Callable[[int], Awaitable[bool]]
    ) -> AsyncIterator[WireEvent]:
        """Events with seq > `after`, replayed then live, ending once `is_settled(last_seq)` says so.

        Subscribing before the replay closes the race with events published meanwhile; anything seen
        twice is skipped by seq, and a jump in seq (a slow reader whose backlog overflowed, or two
        writers publishing out of order) is filled from the database.
        """
        last = after
        async with self._channels.start_subscription([task_channel(task_id)]) as subscriber:
            live: asyncio.Queue[bytes] = asyncio.Queue(maxsize=_LIVE_BACKLOG)
            pump = asyncio.create_task(_pump(subscriber, live))
            try:
                while True:
                    page = await self._repo.list(task_id, after=last, limit=_PAGE)
                    for stored in page:
                        yield WireEvent.of(stored)
                        last = stored.seq
                    if len(page) < _PAGE:
                        break
                if await is_settled(last):
                    return
                while True:
                    try:
                        # Waiting with a time limit costs a task and a timer: only when nothing is ready.
                        raw = live.get_nowait() if not live.empty() else await asyncio.wait_for(live.get(),
                                                                                                _QUIET_POLL_S)
                    except TimeoutError:
                        # Quiet: or the fan-out lost events (Redis restarted under it). The database has
                        # them all, so a quiet follower reads it now and then.
                        for stored in await self._repo.list(task_id, after=last, limit=_PAGE):
                            yield WireEvent.of(stored)
                            last = stored.seq
                        if await is_settled(last):
                            return
                        continue
                    event = WireEvent.decode(raw)
                    if event.ephemeral:
                        yield event
                        continue
                    if event.seq <= last:
                        continue
                    while event.seq > last + 1:
                        missing = await self._repo.list(task_id, after=last, before=event.seq, limit=_PAGE)
                        if not missing:
                            break
                        for earlier in missing:
                            yield WireEvent.of(earlier)
                            last = earlier.seq
                    yield event
                    last = event.seq
                    if event.ends_task() and await is_settled(last):
                        return
            finally:
                pump.cancel()
                await asyncio.gather(pump, return_exceptions=True)


async def _pump(subscriber: Subscriber, live: asyncio.Queue[bytes]) -> None:
    """The subscription's events (a published message holds one or more) into `live`, which `follow` can
    wait on with a time limit. A reader that falls this far behind loses the newest here: `follow` sees
    the jump in seq, or the quiet, and reads them from the database instead."""
    async for raw in subscriber.iter_events():
        for line in raw.split(b"\n"):
            try:
                live.put_nowait(line)
            except asyncio.QueueFull:
                pass
