"""Runs one turn of a task, phase by phase: the working copy made ready (`working_copy`), the container
started (`turn_container`), the agent run with its output streamed as events (`execution`), the turn
judged (`verdict`), the work committed and stored, and the task's record closed in one transaction."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import structlog
from opentelemetry import trace
from opentelemetry.trace import Tracer

from aicode.agents.events import AgentEvent, TurnOutcome
from aicode.containers.runtime import ExecResult
from aicode.git.checkout import CheckoutError, CommitInfo
from aicode.git.store import Snapshot
from aicode.git.worker import GitWorkerError
from aicode.metrics.instruments import CONTAINER_START, TURN_DURATION, TURN_FAILURES, TURNS
from aicode.storage.layout import DataLayout
from aicode.tasks.events import TaskEventBus
from aicode.tasks.execution import AgentExecution, StopSignal
from aicode.tasks.models import TaskChange, TaskRecord, TaskStatus, TurnUsage
from aicode.tasks.repo import TaskRepo
from aicode.tasks.setup_command import SetupCommands, SetupResult
from aicode.tasks.turn_container import StartedContainer, TurnContainers
from aicode.tasks.turn_plan import TurnFailure, TurnPlan, TurnPlanner, commit_title
from aicode.tasks.verdict import judge
from aicode.tasks.working_copy import WorkingCopies, commit_events
from aicode.workspaces.models import WorkspaceRecord
from aicode.workspaces.repo import WorkspaceRepo

__all__ = ["StopSignal", "TaskRunner", "TurnFailure"]

log = structlog.get_logger(__name__)

_CRASHED = ("the server stopped while this task was running; what the agent had written is committed as partial. "
            "Send a follow-up to continue")


@dataclass(slots=True)
class TurnReport:
    status: TaskStatus
    error: str | None
    outcome: TurnOutcome | None = None
    commit: CommitInfo | None = None
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    # Why a failed turn failed, for aicode_turn_failures_total: agent, timeout, memory, budget, setup,
    # infrastructure or internal.
    cause: str | None = None


def _setup_failed(task: TaskRecord, setup: SetupResult) -> TurnReport:
    """The turn's report when the setup command did not succeed: the agent never ran, nothing is committed."""
    if setup.ended_by == "cancelled":
        return TurnReport(status=TaskStatus.CANCELLED, error=None)
    if setup.ended_by in ("shutdown", "lost"):
        return TurnReport(status=TaskStatus.INTERRUPTED,
                          error="the server stopped during the setup command; send a follow-up to start again")
    return TurnReport(status=TaskStatus.FAILED, error=setup.error, cause="setup")


def _priced(outcome: TurnOutcome, events: list[AgentEvent], plan: TurnPlan) -> TurnOutcome:
    """The outcome with the turn's cost: the agent's own figure (Claude Code reports one), else what the
    gateway metered for the turn's model calls, priced by the same table the budgets use."""
    if outcome.cost_usd is not None or plan.grant is None:
        return outcome
    cost = round(plan.grant.spent_usd, 6)
    for event in events:
        if event.type == "turn.completed":
            event.data["cost_usd"] = cost
    return dataclasses.replace(outcome, cost_usd=cost)


def _as_cancelled(events: list[AgentEvent]) -> None:
    """A turn stopped on purpose did not fail: its closing event says cancelled, not "exited with code 137"."""
    for event in events:
        if event.type == "turn.completed":
            event.data["status"] = "cancelled"
            event.data.pop("error", None)


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
        self, node: str, tasks: TaskRepo, workspaces: WorkspaceRepo, bus: TaskEventBus, planner: TurnPlanner,
        copies: WorkingCopies, containers: TurnContainers, execution: AgentExecution, layout: DataLayout,
        setup: SetupCommands, turn_ended: Callable[[TaskRecord], None] | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self._node = node
        self._tasks = tasks
        self._workspaces = workspaces
        self._bus = bus
        self._planner = planner
        self._copies = copies
        self._containers = containers
        self._execution = execution
        self._layout = layout
        self._setup = setup
        # Told of each turn once its record is closed (the forge round trip's re-push and pull request).
        self._turn_ended = turn_ended
        # Spans of each turn's phases (a no-op tracer unless OTEL_* variables turn tracing on).
        self._tracer: Tracer = tracer or trace.NoOpTracer()

    async def drain(self) -> None:
        """Wait for container clean-ups still in flight (at shutdown)."""
        await self._containers.drain()

    async def run(self, task: TaskRecord, stop: StopSignal) -> None:
        """Run the turn this node has claimed (the task is `running` here) and record how it ended."""
        log.info("task.turn_started", task_id=str(task.id), turn=task.turns + 1, node=self._node)
        started = time.monotonic()
        with self._tracer.start_as_current_span("turn", attributes={
                "aicode.task_id": str(task.id), "aicode.turn": task.turns + 1, "aicode.node": self._node,
                "aicode.agent": task.agent}) as span:
            try:
                report = await self._turn(task, stop)
            except (TurnFailure, CheckoutError, GitWorkerError) as exc:
                report = TurnReport(status=TaskStatus.FAILED, error=str(exc), cause="preparation")
            except Exception as exc:  # a bug must end the task, never the server
                log.error("task.turn_crashed", task_id=str(task.id), exc_info=exc)
                report = TurnReport(status=TaskStatus.FAILED, error=f"internal error while running the task ({exc})",
                                    cause="internal")
            span.set_attribute("aicode.status", report.status.value)
            await self._finish(task, report)
        TURN_DURATION.observe(time.monotonic() - started)

    async def recover(self, task_id: UUID) -> None:
        """A turn cut off by a crash: commit what it left in the working copy as partial, end it `interrupted`."""
        task = await self._tasks.get(task_id)
        if task is None or task.status != TaskStatus.RUNNING:
            return
        snapshot: Snapshot | None = None
        if task.base_commit is not None:
            parent = task.head_commit or task.base_commit
            try:
                author = await self._planner.author(task.turn_user_id)
                snapshot = await self._copies.commit(task, parent, partial=True, author=author)
            except Exception as exc:  # a damaged working copy must not stop the server from starting
                log.warning("task.salvage_failed", task_id=str(task.id), exc_info=exc)
            await self._copies.store_state(task, parent, snapshot)
        commit = snapshot.commit if snapshot else None
        report = TurnReport(status=TaskStatus.INTERRUPTED, error=_CRASHED, commit=commit,
                            events=commit_events(task, snapshot, True) if commit else [])
        await self._finish(task, report)
        log.warning("task.interrupted_by_restart", task_id=str(task.id), salvaged=commit is not None)

    async def _turn(self, task: TaskRecord, stop: StopSignal) -> TurnReport:
        clock = PhaseClock()
        tracer = self._tracer
        workspace = await self._workspaces.get(task.workspace_id)
        if workspace is None:
            raise TurnFailure("the workspace was deleted")
        await self._containers.after_previous_turn(task.id)
        with tracer.start_as_current_span("checkout"):
            await self._copies.ready(task, workspace)
        await asyncio.to_thread(self._layout.prepare_task, task.id)
        # The working copy is made while the turn is planned and its container starts (or a warm one is
        # taken): none needs another until the exec.
        basing = asyncio.create_task(self._base(task))
        try:
            async with self._planner.plan(task, workspace) as plan:
                warm = await self._containers.claim_warm(task, workspace, plan)
                starting = asyncio.create_task(self._start_container(task, workspace, plan, warm))
                try:
                    base = await basing
                except BaseException:
                    with contextlib.suppress(Exception):
                        self._containers.discard(task.id, await starting)
                    raise
                clock.lap("prepare")
                container = await starting
                clock.lap("container")
                CONTAINER_START.observe(clock.laps["container"] / 1000)
                if self._setup.needed(task.id, workspace):
                    with tracer.start_as_current_span("setup"):
                        setup = await self._setup.run(task.id, container.id, workspace, stop)
                    clock.lap("setup")
                    if not setup.ok:
                        self._containers.clean_up(task.id, container, None, plan.env)
                        return _setup_failed(task, setup)
                parser = plan.driver.parser(plan.turn)
                result = ExecResult()
                ended_by: str | None = "crashed"
                try:
                    with tracer.start_as_current_span("agent.run"):
                        stderr_tail, ended_by = await self._execution.watch(
                            task.id, container.id, plan.argv, plan.env, task.timeout_s, parser, result, stop)
                finally:
                    clock.lap("agent")
                    # Off the critical path: the turn's outcome depends on neither. Only a container whose
                    # agent exited on its own is still there to commit in.
                    sync = commit_title(task.pending_prompt or task.prompt) if ended_by is None else None
                    self._containers.clean_up(task.id, container, sync, plan.env)
                events, outcome = parser.finish(result.exit_code, stderr_tail)
                outcome = _priced(outcome, events, plan)
                if ended_by == "cancelled":
                    _as_cancelled(events)
                verdict = judge(task, workspace, outcome, result, ended_by, plan.grant)
                status, error = verdict.status, verdict.error
        finally:
            if not basing.done():
                with contextlib.suppress(Exception):
                    await basing
        partial = ended_by is not None or status != TaskStatus.SUCCEEDED
        parent = task.head_commit or base
        with tracer.start_as_current_span("commit"):
            snapshot = await self._copies.commit(task, parent, partial=partial, author=plan.author)
        clock.lap("commit")
        with tracer.start_as_current_span("store"):
            stored = await self._copies.store_state(task, parent, snapshot)
        clock.lap("store")
        # The last agent events, the commit and the status go out in the turn's final transaction.
        closing = [(e.type, e.data) for e in events] + commit_events(task, snapshot, partial) + stored
        return TurnReport(status=status, error=error, outcome=outcome, commit=snapshot.commit, events=closing,
                          cause=verdict.cause, timings=clock.laps)

    async def _base(self, task: TaskRecord) -> str:
        with self._tracer.start_as_current_span("checkout.base"):
            return await self._copies.base(task)

    async def _start_container(self, task: TaskRecord, workspace: WorkspaceRecord, plan: TurnPlan,
                               warm: StartedContainer | None = None) -> StartedContainer:
        if warm is not None:
            return warm
        with self._tracer.start_as_current_span("container.start"):
            return await self._containers.start(task, workspace, plan)

    async def _finish(self, task: TaskRecord, report: TurnReport) -> None:
        outcome = report.outcome
        usage = TurnUsage(turns=1)
        if outcome is not None:
            usage = TurnUsage(turns=1, cost_usd=outcome.cost_usd or 0.0, input_tokens=outcome.input_tokens,
                              output_tokens=outcome.output_tokens, cache_read_tokens=outcome.cache_read_tokens,
                              cache_write_tokens=outcome.cache_write_tokens)
        change = TaskChange(finished=True, set_pending_prompt=True, usage=usage,
                            head_commit=report.commit.commit if report.commit else None,
                            session_id=outcome.session_id if outcome is not None else None)
        async with self._bus.batch(task.id) as batch:
            ended = await self._tasks.transition(
                task.id, report.status, allowed_from=(TaskStatus.RUNNING,), conn=batch.conn, error=report.error,
                on_node=self._node, change=change,
            )
            if ended is None:
                # Another node settled this turn (this node's lease ran out): its record stands.
                log.warning("task.turn_outcome_dropped", task_id=str(task.id), status=report.status)
                return
            data = {"status": report.status} | ({"error": report.error} if report.error else {})
            await batch.add([*report.events, ("task.status", data)])
        TURNS.labels(report.status.value).inc()
        if report.status == TaskStatus.FAILED:
            TURN_FAILURES.labels(report.cause or "agent").inc()
        if self._turn_ended is not None:
            self._turn_ended(ended)
        log.info("task.turn_finished", task_id=str(task.id), status=report.status, error=report.error,
                 timings_ms=report.timings)
