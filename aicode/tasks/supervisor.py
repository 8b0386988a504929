"""The task supervisor: this node's share of the queue every node takes turns from.

Turns wait in PostgreSQL. A node claims the next one when it has a free slot (fairly across
requesters, within the per-user and per-workspace limits that count every node's running turns),
woken by NOTIFY when a turn is queued or ends elsewhere, and otherwise looking again once per lease.
It renews its lease by heartbeat; when another node's lease runs out, that node's running turns are
marked `interrupted` here.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from uuid import UUID

import asyncpg
import structlog

from aicode.background import BackgroundTasks
from aicode.containers.runtime import ContainerError, ContainerRuntime
from aicode.db.notifications import Notifications
from aicode.nodes.repo import NodeRepo
from aicode.settings import SettingsError
from aicode.tasks.events import TaskEventBus
from aicode.tasks.live_session import SessionInbox, SessionRunner
from aicode.tasks.models import TaskRecord, TaskStatus
from aicode.tasks.queue_repo import CANCEL_CHANNEL, QUEUE_CHANNEL, TaskQueueRepo
from aicode.tasks.runner import StopSignal, TaskRunner
from aicode.tasks.session_repo import SESSION_CHANNEL

__all__ = ["NodeConfig", "TaskSupervisor"]

log = structlog.get_logger(__name__)

_SHUTDOWN_GRACE_S = 20.0
# Heartbeats per lease: two can be missed (a slow database, a paused machine) before the lease ends.
_BEATS_PER_LEASE = 3
_DATABASE_DOWN = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """Who this node is and how many turns it takes: in all, and (counted over every node) per
    requester and per workspace (None: no limit beyond the node's)."""

    name: str
    version: str
    secret_fingerprint: str
    lease_s: float
    capacity: int
    per_user: int | None
    per_workspace: int | None


class TaskSupervisor:
    def __init__(
        self, runner: TaskRunner, sessions: SessionRunner, queue: TaskQueueRepo, nodes: NodeRepo, bus: TaskEventBus,
        runtime: ContainerRuntime, notifications: Notifications, background: BackgroundTasks,
        *, config: NodeConfig, server_id: str,
    ) -> None:
        self._runner = runner
        self._sessions = sessions
        self._queue = queue
        self._nodes = nodes
        self._bus = bus
        self._runtime = runtime
        self._notifications = notifications
        self._background = background
        self._config = config
        self._server_id = server_id
        self._slots = asyncio.Semaphore(config.capacity)
        self._running: dict[UUID, StopSignal] = {}
        self._inboxes: dict[UUID, SessionInbox] = {}  # the live sessions running here
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._draining = False
        self._incarnation = 0
        # Heartbeats in a row that reached the database. After an outage every node's lease may have run
        # out at once: a node judges others lost only once all of them have had a lease's time to renew.
        self._steady_beats = _BEATS_PER_LEASE

    @property
    def node(self) -> str:
        return self._config.name

    @property
    def running(self) -> int:
        return len(self._running)

    async def start(self) -> None:
        """Join as a node, settle what an earlier life of this node left running, then take turns."""
        config = self._config
        others = await self._nodes.alive_with_another_key(config.name, config.secret_fingerprint)
        if others:
            raise SettingsError(
                f"node(s) {', '.join(others)} share this database with a different AICODE_SECRET_KEY: every node "
                "must run with the same key, or none could read the others' stored credentials and sign-ins")
        self._incarnation = await self._nodes.join(config.name, config.version, config.capacity, config.lease_s,
                                                   config.secret_fingerprint)
        await self._remove_orphans()
        for task_id in await self._queue.adopt_running(config.name):
            await self._runner.recover(task_id)
        self._notifications.listen(QUEUE_CHANNEL, lambda _payload: self.wake())
        self._notifications.listen(CANCEL_CHANNEL, self._cancel_requested)
        self._notifications.listen(SESSION_CHANNEL, self._session_signal)
        self._notifications.on_connect(self.wake)
        await self._notifications.start()
        self._background.spawn(self._dispatch(), name="task-dispatcher")
        self._background.spawn(self._heartbeat(), name="node-heartbeat")
        log.info("node.joined", node=config.name, incarnation=self._incarnation, capacity=config.capacity,
                 lease_s=config.lease_s)

    async def _remove_orphans(self) -> None:
        """Containers this server left behind when it last stopped abruptly (their turns are settled below)."""
        try:
            for container_id in await self._runtime.list_ids({"aicode.server": self._server_id}):
                await self._runtime.remove(container_id)
        except ContainerError as exc:
            log.warning("containers.orphan_cleanup_failed", error=str(exc))

    def wake(self) -> None:
        """A turn may be waiting (queued here or on another node, or a slot freed somewhere)."""
        self._wake.set()

    def cancel(self, task_id: UUID) -> bool:
        """Ask a turn running on this node to stop; False if it does not run here."""
        signal = self._running.get(task_id)
        if signal is None:
            return False
        signal.stop("cancelled")
        return True

    async def request_cancel(self, task_id: UUID) -> None:
        """Stop the turn wherever it runs: here at once, on another node through NOTIFY."""
        if not self.cancel(task_id):
            await self._queue.notify_cancel(task_id)

    def signal_session(self, verb: str, task_id: UUID) -> bool:
        """Tell a live session running here that a prompt waits (`prompt`), or to `interrupt` its turn, or to
        `terminate`; False if it does not run here (the database's NOTIFY reaches the node that holds it)."""
        inbox = self._inboxes.get(task_id)
        if inbox is None:
            return False
        if verb == "prompt":
            inbox.nudge()
        elif verb == "interrupt":
            inbox.interrupt.set()
        elif verb == "terminate":
            inbox.terminate.set()
        return True

    def _session_signal(self, payload: str) -> None:
        verb, _, task_id = payload.partition(":")
        with contextlib.suppress(ValueError):
            self.signal_session(verb, UUID(task_id))

    def _cancel_requested(self, payload: str) -> None:
        with contextlib.suppress(ValueError):
            if self.cancel(UUID(payload)):
                log.info("task.cancel_received", task_id=payload, node=self.node)

    async def stop(self) -> None:
        """Drain: claim nothing more; running turns stop and commit their work as partial (`interrupted`)."""
        self._draining = True
        self.wake()
        for signal in self._running.values():
            signal.stop("shutdown")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), _SHUTDOWN_GRACE_S)
        await self._runner.drain()
        with contextlib.suppress(*_DATABASE_DOWN):
            await self._nodes.leave(self.node, self._incarnation)
        await self._notifications.close()

    # -- taking turns ------------------------------------------------------------------------------

    async def _dispatch(self) -> None:
        while True:
            await self._slots.acquire()
            if self._draining:
                self._slots.release()
                return
            self._wake.clear()
            try:
                task = await self._claim()
            except _DATABASE_DOWN as exc:
                log.warning("queue.claim_failed", error=str(exc))
                task = None
            except Exception as exc:  # a bug must not end this node's dispatching for good
                log.error("queue.claim_crashed", exc_info=exc)
                task = None
            except BaseException:
                self._slots.release()
                raise
            if task is None:
                self._slots.release()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._config.lease_s)
                continue
            signal = StopSignal()
            self._running[task.id] = signal
            self._idle.clear()
            self._background.spawn(self._run(task, signal), name=f"task-{task.id}")

    async def _claim(self) -> TaskRecord | None:
        config = self._config
        async with self._bus.batch() as batch:
            task = await self._queue.claim(batch.conn, config.name, per_user=config.per_user,
                                           per_workspace=config.per_workspace)
            if task is not None:
                await batch.add([("task.status", {"status": TaskStatus.RUNNING})],
                                task_id=task.id)
        return task

    async def _run(self, task: TaskRecord, signal: StopSignal) -> None:
        try:
            if task.kind == "session":
                inbox = self._inboxes[task.id] = SessionInbox()
                try:
                    await self._sessions.run(task, signal, inbox)
                finally:
                    del self._inboxes[task.id]
            else:
                await self._runner.run(task, signal)
        except Exception as exc:  # the runner records failures itself; this is the last line of defence
            log.error("task.worker_error", task_id=str(task.id), exc_info=exc)
        finally:
            del self._running[task.id]
            if not self._running:
                self._idle.set()
            self._slots.release()
            # The limits count every node's turns: a turn ending here may let another node start one.
            with contextlib.suppress(*_DATABASE_DOWN):
                await self._queue.notify_queued()
            self.wake()

    # -- the lease ---------------------------------------------------------------------------------

    async def _heartbeat(self) -> None:
        interval = self._config.lease_s / _BEATS_PER_LEASE
        while not self._draining:
            await asyncio.sleep(interval)
            try:
                await self._beat()
            except _DATABASE_DOWN as exc:
                self._steady_beats = 0
                log.warning("node.heartbeat_failed", node=self.node, error=str(exc))
            except Exception as exc:  # a bug must not stop the heartbeat: the lease would run out
                self._steady_beats = 0
                log.error("node.heartbeat_crashed", node=self.node, exc_info=exc)

    async def _beat(self) -> None:
        config = self._config
        renewed = await self._nodes.renew(config.name, self._incarnation, running=len(self._running),
                                          draining=self._draining, lease_s=config.lease_s)
        if not renewed and not self._draining:
            # Two processes under one name cannot both hold its lease: this one takes no more turns.
            log.error("node.superseded", node=config.name,
                      detail="another process joined under this node name and holds its lease now; this one "
                             "claims no more turns. Give each node its own AICODE_NODE_NAME")
            self._draining = True
            self.wake()
        # Turns another node has meanwhile marked `interrupted` (this node's lease ran out while it was
        # paused or cut off): stop them, their outcome is no longer this node's to record.
        mine = await self._queue.running_on(config.name) if renewed else set()
        for task_id, signal in list(self._running.items()):
            if task_id not in mine:
                log.warning("task.turn_lost", task_id=str(task_id), node=config.name)
                signal.stop("lost")
        self._steady_beats += 1
        if self._steady_beats > _BEATS_PER_LEASE:
            await self._settle_lost_nodes()

    async def _settle_lost_nodes(self) -> None:
        for task_id, node in await self._queue.on_lost_nodes(self.node):
            error = (f"the node {node!r} running this turn stopped answering (its lease ran out); "
                     "send a follow-up to try again")
            async with self._bus.batch(task_id) as batch:
                if await self._queue.interrupt(batch.conn, task_id, node, error) is None:
                    continue  # settled by another node a moment ago
                await batch.add([("task.status", {"status": TaskStatus.INTERRUPTED, "error": error})])
            log.warning("task.interrupted_node_lost", task_id=str(task_id), lost_node=node, by=self.node)
