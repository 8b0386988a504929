"""Runs one turn of a task: plan → working copy + hardened container → agent exec → events → commit."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

import structlog

from aicode.agents.events import TurnOutcome
from aicode.background import BackgroundTasks
from aicode.containers.confinement import NetworkConfinement
from aicode.containers.network_holders import NetworkHolders
from aicode.containers.policy import ContainerSpec, Mount
from aicode.containers.runtime import ContainerError, ContainerRuntime, ExecResult
from aicode.errors import AicodeError
from aicode.gateway.models import TurnGrant
from aicode.git.checkout import CheckoutError, CommitInfo
from aicode.git.store import GitStore, Snapshot
from aicode.git.worker import GitWorkerError
from aicode.storage.layout import DataLayout
from aicode.tasks.events import TaskEventBus
from aicode.tasks.execution import AgentExecution, StopSignal
from aicode.tasks.models import TaskRecord, TaskStatus
from aicode.tasks.portable import PortableState, StateUnavailable
from aicode.tasks.repo import TaskRepo
from aicode.tasks.turn_plan import (
    AGENT_HOME,
    COMMITTER,
    CONFIG_DIR,
    TurnFailure,
    TurnPlan,
    TurnPlanner,
    commit_title,
    git_sync_command,
)
from aicode.workspaces.models import WorkspaceRecord
from aicode.workspaces.repo import WorkspaceRepo

__all__ = ["LocalMirrors", "RunnerConfig", "StopSignal", "TaskRunner", "TurnFailure"]

log = structlog.get_logger(__name__)

_CRASHED = ("the server stopped while this task was running; what the agent had written is committed as partial. "
            "Send a follow-up to continue")
_LOST = ("this node lost its lease while the turn ran (it was cut off from the database); "
         "another node has ended the turn")
_NOT_RESTORED = "this task's state could not be restored on this node"
_SKIPPED_SHOWN = 20
_CLEAN_UP_WAIT_S = 120.0


class LocalMirrors(Protocol):
    async def ensure_local(self, workspace: WorkspaceRecord) -> None:
        """The workspace's mirror on this node, up to date with its last sync on any node."""


@dataclass(frozen=True, slots=True)
class RunnerConfig:
    server_id: str
    node: str
    default_image: str
    container_user: str  # uid:gid the agent runs as inside its container


@dataclass(slots=True)
class TurnReport:
    status: str
    error: str | None
    outcome: TurnOutcome | None = None
    commit: CommitInfo | None = None
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def _snapshot_events(task: TaskRecord, snapshot: Snapshot | None, partial: bool) -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    if snapshot is not None and snapshot.skipped:
        shown = "; ".join(f"{path}: {why}" for path, why in snapshot.skipped[:_SKIPPED_SHOWN])
        more = len(snapshot.skipped) - _SKIPPED_SHOWN
        events.append(("notice", {"level": "warning", "code": "files_not_committed",
                                  "message": f"not committed: {shown}" + (f" (and {more} more)" if more > 0 else "")}))
    commit = snapshot.commit if snapshot is not None else None
    if commit is None:
        events.append(("notice", {"level": "info", "code": "no_changes",
                                  "message": "the turn changed no files: no commit was made"}))
    else:
        events.append(("git.commit", {"commit": commit.commit, "branch": task.branch,
                                      "files_changed": commit.files_changed, "additions": commit.additions,
                                      "deletions": commit.deletions, "partial": partial}))
    return events


class PhaseClock:
    """Milliseconds spent in each phase of a turn, for the log line operators tune with."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.laps[phase] = round((now - self._last) * 1000, 1)
        self._last = now


class TaskRunner:
    def __init__(
        self, config: RunnerConfig, tasks: TaskRepo, workspaces: WorkspaceRepo, bus: TaskEventBus,
        runtime: ContainerRuntime, planner: TurnPlanner, store: GitStore, layout: DataLayout,
        confinement: NetworkConfinement, holders: NetworkHolders, mirrors: LocalMirrors, state: PortableState,
    ) -> None:
        self._config = config
        self._tasks = tasks
        self._workspaces = workspaces
        self._bus = bus
        self._runtime = runtime
        self._planner = planner
        self._store = store
        self._layout = layout
        self._confinement = confinement
        self._holders = holders
        self._mirrors = mirrors
        self._state = state
        self._execution = AgentExecution(runtime, bus)
        self._removals = BackgroundTasks()
        # Per task, what the last turn still does after it ended (its agent's own commit, removing its
        # container): the next turn of that task waits for it, so the two never share the checkout.
        self._cleanups: dict[UUID, asyncio.Task[None]] = {}

    async def drain(self) -> None:
        """Wait for container removals still in flight (at shutdown)."""
        await self._removals.join()

    async def run(self, task: TaskRecord, stop: StopSignal) -> None:
        """Run the turn this node has claimed (the task is `running` here) and record how it ended."""
        task_id = task.id
        log.info("task.turn_started", task_id=str(task_id), turn=task.turns + 1, node=self._config.node)
        try:
            report = await self._turn(task, stop)
        except (TurnFailure, CheckoutError, GitWorkerError) as exc:
            report = TurnReport(status=TaskStatus.FAILED, error=str(exc))
        except Exception as exc:  # a bug must end the task, never the server
            log.error("task.turn_crashed", task_id=str(task_id), exc_info=exc)
            report = TurnReport(status=TaskStatus.FAILED, error=f"internal error while running the task ({exc})")
        await self._finish(task, report)

    async def recover(self, task_id: UUID) -> None:
        """A turn cut off by a crash: commit what it left in the working copy as partial, end it `interrupted`."""
        task = await self._tasks.get(task_id)
        if task is None or task.status != TaskStatus.RUNNING:
            return
        snapshot = None
        if task.base_commit is not None:
            try:
                snapshot = await self._commit(task, task.head_commit or task.base_commit, partial=True)
            except Exception as exc:  # a damaged working copy must not stop the server from starting
                log.warning("task.salvage_failed", task_id=str(task.id), exc_info=exc)
        commit = snapshot.commit if snapshot else None
        if task.base_commit is not None:
            await self._state.save(task, task.head_commit or task.base_commit, commit.commit if commit else None)
        report = TurnReport(status=TaskStatus.INTERRUPTED, error=_CRASHED, commit=commit,
                            events=_snapshot_events(task, snapshot, True) if commit else [])
        await self._finish(task, report)
        log.warning("task.interrupted_by_restart", task_id=str(task.id), salvaged=commit is not None)

    # -- the turn --------------------------------------------------------------------------------

    async def _turn(self, task: TaskRecord, stop: StopSignal) -> TurnReport:
        clock = PhaseClock()
        workspace = await self._workspaces.get(task.workspace_id)
        if workspace is None:
            raise TurnFailure("the workspace was deleted")
        await self._after_previous_turn(task.id)
        try:
            await self._mirrors.ensure_local(workspace)
        except AicodeError as exc:
            raise TurnFailure(exc.detail) from None
        if task.base_commit is not None:
            try:
                await self._state.ensure_working_copy(task)
            except StateUnavailable as exc:
                raise TurnFailure(f"{_NOT_RESTORED}: {exc}") from None
        async with self._planner.plan(task, workspace) as plan:
            await asyncio.to_thread(self._layout.prepare_task, task.id)
            # The container starts while the working copy is made: neither needs the other until the exec.
            starting = asyncio.create_task(self._start_container(task, workspace, plan))
            try:
                base = await self._ensure_checkout(task)
            except BaseException:
                with contextlib.suppress(Exception):
                    self._removals.spawn(self._remove(*await starting), name=f"remove-{task.id}")
                raise
            clock.lap("prepare")
            container_id, holder = await starting
            clock.lap("container")
            parser = plan.driver.parser()
            result = ExecResult()
            ended_by: str | None = "crashed"
            try:
                stderr_tail, ended_by = await self._execution.watch(
                    task.id, container_id, plan.argv, plan.env, task.timeout_s, parser, result, stop)
            finally:
                clock.lap("agent")
                # Off the critical path: the turn's outcome depends on neither. Only a container whose
                # agent exited on its own is still there to commit in.
                sync = commit_title(task.pending_prompt or task.prompt) if ended_by is None else None
                self._cleanups[task.id] = self._removals.spawn(
                    self._clean_up(task.id, container_id, holder, sync, plan.env), name=f"clean-up-{task.id}")
            events, outcome = parser.finish(result.exit_code, stderr_tail)
            status, error = self._judge(task, workspace, outcome, result, ended_by, plan.grant)
        partial = ended_by is not None or status != TaskStatus.SUCCEEDED
        snapshot = await self._commit(task, task.head_commit or base, partial=partial, author=plan.author)
        clock.lap("commit")
        stored = await self._state.save(task, task.head_commit or base, snapshot.commit.commit if snapshot.commit else None)
        clock.lap("store")
        # The last agent events, the commit and the status go out in the turn's final transaction.
        closing = [(e.type, e.data) for e in events] + _snapshot_events(task, snapshot, partial)
        if stored is not None:
            closing.append(("notice", {"level": "warning", "code": "state_not_stored", "message": stored}))
        return TurnReport(status=status, error=error, outcome=outcome, commit=snapshot.commit, events=closing,
                          timings=clock.laps)

    async def _ensure_checkout(self, task: TaskRecord) -> str:
        """The base commit; on the first turn the branch and working copy are made from the base branch."""
        if task.base_commit is not None:
            return task.base_commit
        base = await self._store.make_checkout(task.workspace_id, task.id, task.base_branch, task.branch)
        await self._tasks.set_base_commit(task.id, base)
        return base

    async def _start_container(self, task: TaskRecord, workspace: WorkspaceRecord, plan: TurnPlan
                               ) -> tuple[str, str | None]:
        """The turn's container, and the network holder whose namespace it shares (None if it has its own)."""
        network, holder = await self._network(plan)
        limits = workspace.limits
        kwargs: dict[str, Any] = {k: limits[k] for k in ("memory_mb", "cpus", "pids") if limits.get(k)}
        spec = ContainerSpec(
            image=workspace.image or self._config.default_image,
            name=f"aicode-{task.id.hex[:12]}-{task.turns + 1}",
            user=self._config.container_user,
            labels={"aicode.server": self._config.server_id, "aicode.workspace": str(workspace.id),
                    "aicode.task": str(task.id)},
            mounts=(Mount(str(self._layout.checkout(task.id)), "/workspace"),
                    Mount(str(self._layout.agent_config(task.id)), CONFIG_DIR)),
            network=network,
            home=AGENT_HOME,
            ipv6=plan.confine_to is None,
            **kwargs,
        )
        try:
            container_id = await self._runtime.start(spec)
        except ContainerError as exc:
            if holder is not None:
                self._removals.spawn(self._holders.release(holder), name=f"release-{holder[:12]}")
            raise TurnFailure(str(exc)) from None
        if plan.confine_to is not None and holder is None:
            await self._confinement.confine(container_id, *plan.confine_to)
        return container_id, holder

    async def _network(self, plan: TurnPlan) -> tuple[str, str | None]:
        """On the agent network, the namespace of a ready holder; a network of its own otherwise."""
        if plan.confine_to is None:
            return plan.network, None
        try:
            holder = await self._holders.take(plan.network, *plan.confine_to)
        except ContainerError as exc:
            log.warning("task.network_holder_unavailable", error=str(exc))
            return plan.network, None
        return f"container:{holder}", holder

    async def _remove(self, container_id: str, holder: str | None) -> None:
        await self._runtime.remove(container_id)
        if holder is not None:
            await self._holders.release(holder)

    async def _clean_up(self, task_id: UUID, container_id: str, holder: str | None, sync: str | None,
                        env: dict[str, str]) -> None:
        """After a turn: the agent's own commit in its repository (`sync`: its message), then removal."""
        try:
            if sync is not None:
                quiet = {k: v for k, v in env.items() if k == "HOME" or k.startswith("GIT_")}
                with contextlib.suppress(ContainerError):
                    async for _ in self._runtime.run(container_id, git_sync_command(sync), quiet, ExecResult()):
                        pass
        finally:
            await self._remove(container_id, holder)
            if self._cleanups.get(task_id) is asyncio.current_task():
                del self._cleanups[task_id]

    async def _after_previous_turn(self, task_id: UUID) -> None:
        previous = self._cleanups.get(task_id)
        if previous is not None and not previous.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(previous), _CLEAN_UP_WAIT_S)

    def _judge(
        self, task: TaskRecord, workspace: WorkspaceRecord, outcome: TurnOutcome, result: ExecResult,
        ended_by: str | None, grant: TurnGrant | None,
    ) -> tuple[str, str | None]:
        """The turn's status and error, from why it ended and what the agent reported."""
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

    async def _commit(self, task: TaskRecord, parent: str, *, partial: bool,
                      author: tuple[str, str] | None = None) -> Snapshot:
        """Commit the working copy on the task branch: author the turn's requester, committer aicode."""
        prompt = (task.pending_prompt or task.prompt).strip()
        message = f"{'[partial] ' if partial else ''}{commit_title(prompt)}\n\n{prompt}\n\naicode-task: {task.id}\n"
        author = author or await self._planner.author(task.turn_user_id)
        return await self._store.snapshot(task.workspace_id, task.id, parent, message, author, COMMITTER)

    async def _finish(self, task: TaskRecord, report: TurnReport) -> None:
        outcome = report.outcome
        usage: dict[str, Any] = {}
        if outcome is not None:
            usage = {"cost_usd": outcome.cost_usd or 0.0, "input_tokens": outcome.input_tokens,
                     "output_tokens": outcome.output_tokens, "cache_read_tokens": outcome.cache_read_tokens,
                     "cache_write_tokens": outcome.cache_write_tokens, "session_id": outcome.session_id}
        async with self._bus.batch(task.id) as batch:
            ended = await self._tasks.transition(
                task.id, report.status, allowed_from=(TaskStatus.RUNNING,), conn=batch.conn, error=report.error,
                on_node=self._config.node, finished=True, turns=1, pending_prompt=None,
                head_commit=report.commit.commit if report.commit else None, **usage,
            )
            if ended is None:
                # Another node settled this turn (this node's lease ran out): its record stands.
                log.warning("task.turn_outcome_dropped", task_id=str(task.id), status=report.status)
                return
            data = {"status": report.status} | ({"error": report.error} if report.error else {})
            await batch.add([*report.events, ("task.status", data)])
        log.info("task.turn_finished", task_id=str(task.id), status=report.status, error=report.error,
                 timings_ms=report.timings)
