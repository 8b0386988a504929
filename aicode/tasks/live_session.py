"""A live session: one container, and (for Claude Code) one agent process, kept between prompts.

The session is a task that stays `running` (holding a slot, as any running turn does) while it lives.
Each prompt is one turn: Claude Code gets it as a stream-json user message on its stdin; agents
whose CLI cannot take prompts that way run once per prompt in the same container, resuming their
session. Each turn ends as a task turn does: its work committed on the branch, the task's record
updated, then a live-only `session.idle` for whoever is watching. The session ends when it is
terminated, cancelled, idle for `idle_s`, or when its agent process dies; its state is kept, so a
later follow-up resumes it with `--resume` as after any turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import structlog

from aicode.agents.claude import ClaudeDriver, ClaudeStreamParser
from aicode.agents.events import LIVE_ONLY, AgentEvent, TokenCount, TurnOutcome
from aicode.agents.lines import LineSplitter
from aicode.agents.turn import AgentTurn
from aicode.containers.runtime import STDERR, ContainerError, ContainerRuntime, ExecResult, LiveExec
from aicode.git.checkout import CheckoutError
from aicode.git.worker import GitWorkerError
from aicode.metrics.instruments import TURN_FAILURES, TURNS
from aicode.storage.layout import DataLayout
from aicode.tasks.events import TaskEventBus
from aicode.tasks.execution import AgentExecution, StopSignal
from aicode.tasks.models import TaskChange, TaskRecord, TaskStatus, TurnUsage
from aicode.tasks.repo import TaskRepo
from aicode.tasks.session_repo import SessionRepo
from aicode.tasks.setup_command import SetupCommands
from aicode.tasks.turn_container import StartedContainer, TurnContainers
from aicode.tasks.turn_plan import TurnFailure, TurnPlan, TurnPlanner, commit_title, git_sync_command
from aicode.tasks.verdict import judge
from aicode.tasks.working_copy import WorkingCopies, commit_events
from aicode.workspaces.models import WorkspaceRecord
from aicode.workspaces.repo import WorkspaceRepo

__all__ = ["SessionInbox", "SessionRunner"]

log = structlog.get_logger(__name__)

# After an interrupt the CLI ends its turn with an aborted result at once; past this it is stopped.
_INTERRUPT_GRACE_S = 15.0
_STDERR_TAIL = 4096


class SessionInbox:
    """What reaches a session running on this node: a nudge that prompts wait in the database, and the
    requests to interrupt the turn or to end the session."""

    def __init__(self) -> None:
        self._nudge = asyncio.Event()
        self._nudge.set()  # prompts may already wait when the session starts
        self.interrupt = asyncio.Event()
        self.terminate = asyncio.Event()

    def nudge(self) -> None:
        self._nudge.set()

    async def wait_nudge(self, timeout: float) -> bool:
        """True when nudged (prompts may wait), False when `timeout` passed first."""
        try:
            await asyncio.wait_for(self._nudge.wait(), timeout)
        except TimeoutError:
            return False
        self._nudge.clear()
        return True


@dataclass(slots=True)
class _Turn:
    prompt: str
    user_id: UUID
    started: float = dataclasses.field(default_factory=time.monotonic)


class _LiveAgent:
    """Claude Code reading prompts on stdin: one reader for the process's whole life; a turn ends with
    its result line."""

    def __init__(self, bus: TaskEventBus, task_id: UUID, container_id: str, process: LiveExec,
                 parser: ClaudeStreamParser) -> None:
        self.container_id = container_id
        self._bus = bus
        self._task_id = task_id
        self._process = process
        self._parser = parser
        self._outcomes: asyncio.Queue[TurnOutcome] = asyncio.Queue()
        self._stderr = bytearray()
        self.exited = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def ask(self, prompt: str) -> None:
        await self._process.send(ClaudeDriver.user_message(prompt))

    async def interrupt(self) -> None:
        await self._process.send(ClaudeDriver.interrupt_request(f"req_{uuid.uuid4().hex[:12]}"))

    async def outcome(self) -> TurnOutcome | None:
        """The running turn's outcome; None when the process ended before giving one."""
        waiter = asyncio.create_task(self._outcomes.get())
        exited = asyncio.create_task(self.exited.wait())
        try:
            await asyncio.wait({waiter, exited}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            exited.cancel()
            if not waiter.done():
                waiter.cancel()
        return waiter.result() if waiter.done() and not waiter.cancelled() else None

    def closing(self, exit_code: int | None) -> tuple[list[AgentEvent], TurnOutcome]:
        return self._parser.finish(exit_code, self._stderr.decode(errors="replace"))

    async def close(self) -> None:
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)

    async def _read(self) -> None:
        lines = LineSplitter()
        try:
            async for chunk in self._process.output():
                if chunk.stream == STDERR:
                    self._stderr.extend(chunk.data)
                    del self._stderr[:-_STDERR_TAIL]
                    continue
                for line in lines.feed(chunk.data):
                    await self._emit(self._parser.feed(line))
            for line in lines.flush():
                await self._emit(self._parser.feed(line))
        except ContainerError as exc:
            log.warning("session.agent_output_broke", task_id=str(self._task_id), error=str(exc))
        finally:
            self.exited.set()

    async def _emit(self, events: list[AgentEvent]) -> None:
        live = [(e.type, e.data) for e in events if e.type in LIVE_ONLY]
        stored = [(e.type, e.data) for e in events if e.type not in LIVE_ONLY]
        if live:
            self._bus.broadcast(self._task_id, live)
        if stored:
            await self._bus.emit(self._task_id, stored)
        if any(e.type == "turn.completed" for e in events) and (outcome := self._parser.take_outcome()) is not None:
            self._outcomes.put_nowait(outcome)


class SessionRunner:
    def __init__(
        self, node: str, tasks: TaskRepo, sessions: SessionRepo, workspaces: WorkspaceRepo, bus: TaskEventBus,
        planner: TurnPlanner, copies: WorkingCopies, containers: TurnContainers, execution: AgentExecution,
        runtime: ContainerRuntime, layout: DataLayout, setup: SetupCommands, *, idle_s: float,
        turn_ended: Callable[[TaskRecord], None] | None = None, waiting: Callable[[UUID], None] | None = None,
    ) -> None:
        # Told when the session ended (the forge round trip's re-push and pull request, notifications).
        self._turn_ended = turn_ended
        # Told when the session goes idle, waiting for its next prompt (notifications).
        self._waiting = waiting
        self._node = node
        self._tasks = tasks
        self._sessions = sessions
        self._workspaces = workspaces
        self._bus = bus
        self._planner = planner
        self._copies = copies
        self._containers = containers
        self._execution = execution
        self._runtime = runtime
        self._layout = layout
        self._setup = setup
        self._idle_s = idle_s

    async def run(self, task: TaskRecord, stop: StopSignal, inbox: SessionInbox) -> None:
        """Run the session this node claimed until it ends, then record how it ended."""
        log.info("session.started", task_id=str(task.id), node=self._node)
        try:
            status, error = await self._session(task, stop, inbox)
        except (TurnFailure, CheckoutError, GitWorkerError, ContainerError) as exc:
            status, error = TaskStatus.FAILED, str(exc)
        except Exception as exc:  # a bug must end the session, never the server
            log.error("session.crashed", task_id=str(task.id), exc_info=exc)
            status, error = TaskStatus.FAILED, f"internal error while running the session ({exc})"
        await self._end(task.id, status, error)

    async def _session(self, task: TaskRecord, stop: StopSignal, inbox: SessionInbox) -> tuple[TaskStatus, str | None]:
        workspace = await self._workspaces.get(task.workspace_id)
        if workspace is None:
            raise TurnFailure("the workspace was deleted")
        await self._containers.after_previous_turn(task.id)
        await self._copies.ready(task, workspace)
        async with self._planner.plan(task, workspace, live=True) as plan:
            await asyncio.to_thread(self._layout.prepare_task, task.id)
            container = (await self._containers.claim_warm(task, workspace, plan)
                         or await self._containers.start(task, workspace, plan))
            try:
                base = await self._copies.base(task)
                task = dataclasses.replace(task, base_commit=base)
                if self._setup.needed(task.id, workspace):
                    setup = await self._setup.run(task.id, container.id, workspace, stop)
                    if not setup.ok:
                        if setup.ended_by == "cancelled":
                            return TaskStatus.CANCELLED, None
                        return TaskStatus.FAILED, setup.error
                return await self._prompts(task, workspace, plan, container, stop, inbox)
            finally:
                self._containers.clean_up(task.id, container, None, plan.env)

    async def _prompts(self, task: TaskRecord, workspace: WorkspaceRecord, plan: TurnPlan,
                       container: StartedContainer, stop: StopSignal, inbox: SessionInbox
                       ) -> tuple[TaskStatus, str | None]:
        first = _Turn(task.pending_prompt, task.turn_user_id) if task.pending_prompt else None
        if not plan.driver.live:
            return await self._prompt_by_prompt(task, workspace, plan, container, stop, inbox, first)
        parser = ClaudeStreamParser()
        result = ExecResult()
        async with self._runtime.open(container.id, plan.argv, plan.env, result) as process:
            agent = _LiveAgent(self._bus, task.id, container.id, process, parser)
            try:
                status: TaskStatus = TaskStatus.SUCCEEDED
                while True:
                    turn = first or await self._next_prompt(task.id, inbox, stop, agent.exited)
                    first = None
                    if turn is None:
                        return (TaskStatus.CANCELLED, None) if stop.reason == "cancelled" else (status, None)
                    if agent.exited.is_set():
                        return TaskStatus.FAILED, "the agent's process ended; send a follow-up to resume the session"
                    if not await self._switch_requester(task.id, plan, workspace, turn.user_id):
                        continue
                    await agent.ask(turn.prompt)
                    ended_by, outcome = await self._await_turn(agent, task, stop, inbox)
                    if outcome is None:
                        events, outcome = agent.closing(result.exit_code)
                        await self._bus.emit(task.id, [(e.type, e.data) for e in events])
                    task, status = await self._close_turn(task, workspace, plan, container, turn, outcome, result,
                                                          ended_by)
                    if ended_by in ("cancelled", "shutdown", "lost", "timeout") or agent.exited.is_set():
                        return self._ending(status, ended_by, agent.exited.is_set())
            finally:
                await agent.close()

    async def _prompt_by_prompt(self, task: TaskRecord, workspace: WorkspaceRecord, plan: TurnPlan,
                                container: StartedContainer, stop: StopSignal, inbox: SessionInbox,
                                first: _Turn | None) -> tuple[TaskStatus, str | None]:
        """Agents that take one prompt per process: the container stays, each prompt resumes the session."""
        never = asyncio.Event()
        status: TaskStatus = TaskStatus.SUCCEEDED
        while True:
            turn = first or await self._next_prompt(task.id, inbox, stop, never)
            first = None
            if turn is None:
                return (TaskStatus.CANCELLED, None) if stop.reason == "cancelled" else (status, None)
            if not await self._switch_requester(task.id, plan, workspace, turn.user_id):
                continue
            before = TokenCount(task.input_tokens, task.output_tokens, task.cache_read_tokens, task.cache_write_tokens)
            agent_turn = AgentTurn(prompt=turn.prompt, model=task.model, max_turns=task.max_turns,
                                   resume_session_id=task.session_id,
                                   usage_before=before if task.session_id else TokenCount())
            parser = plan.driver.parser(agent_turn)
            result = ExecResult()
            interrupt = asyncio.create_task(self._kill_agent_on_interrupt(container.id, inbox))
            try:
                stderr, ended_by = await self._execution.watch(
                    task.id, container.id, plan.driver.command(agent_turn, plan.access), plan.env, task.timeout_s,
                    parser, result, stop)
            finally:
                interrupt.cancel()
                await asyncio.gather(interrupt, return_exceptions=True)
            if ended_by is None and interrupt.done() and not interrupt.cancelled() and interrupt.result():
                ended_by = "interrupted"
            events, outcome = parser.finish(result.exit_code, stderr)
            await self._bus.emit(task.id, [(e.type, e.data) for e in events])
            task, status = await self._close_turn(task, workspace, plan, container, turn, outcome, result, ended_by)
            if ended_by in ("cancelled", "shutdown", "lost", "timeout"):
                return self._ending(status, ended_by, False)

    async def _kill_agent_on_interrupt(self, container_id: str, inbox: SessionInbox) -> bool:
        await inbox.interrupt.wait()
        inbox.interrupt.clear()
        # Every process of the agent's user but the container's first (kill(-1) spares it): the turn ends,
        # the container stays for the next prompt.
        with contextlib.suppress(ContainerError):
            async for _ in self._runtime.run(container_id, ["sh", "-c", "kill -KILL -1"], {}, ExecResult()):
                pass
        return True

    @staticmethod
    def _ending(status: TaskStatus, ended_by: str | None, exited: bool) -> tuple[TaskStatus, str | None]:
        if ended_by == "cancelled":
            return TaskStatus.CANCELLED, None
        if ended_by in ("shutdown", "lost"):
            return TaskStatus.INTERRUPTED, "the server stopped during the session; send a follow-up to resume it"
        if ended_by == "timeout":
            return TaskStatus.FAILED, "a turn ran past the task's timeout_s; send a follow-up to resume the session"
        if exited:
            return TaskStatus.FAILED, "the agent's process ended; send a follow-up to resume the session"
        return status, None

    async def _next_prompt(self, task_id: UUID, inbox: SessionInbox, stop: StopSignal,
                           exited: asyncio.Event) -> _Turn | None:
        """The next waiting prompt; None when the session is to end (terminated, stopped, idle too long)."""
        idle_until = time.monotonic() + self._idle_s
        announced = False
        while True:
            if stop.reason is not None or inbox.terminate.is_set() or exited.is_set():
                return None
            taken = await self._sessions.take_prompt(task_id)
            if taken is not None:
                return _Turn(taken.prompt, taken.user_id)
            if not announced:
                self._bus.broadcast(task_id, [("session.idle", {})])
                announced = True
                if self._waiting is not None:
                    self._waiting(task_id)
            left = idle_until - time.monotonic()
            if left <= 0:
                log.info("session.idle_expired", task_id=str(task_id), idle_s=self._idle_s)
                return None
            waiters = {asyncio.create_task(inbox.wait_nudge(left)), asyncio.create_task(stop.wait()),
                       asyncio.create_task(inbox.terminate.wait()), asyncio.create_task(exited.wait())}
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
                await asyncio.gather(*waiters, return_exceptions=True)

    async def _await_turn(self, agent: _LiveAgent, task: TaskRecord, stop: StopSignal, inbox: SessionInbox
                          ) -> tuple[str | None, TurnOutcome | None]:
        """(how the turn ended: None on its own, else interrupted/cancelled/shutdown/lost/timeout; its outcome)."""
        inbox.interrupt.clear()
        outcome_task = asyncio.create_task(agent.outcome())
        stopper = asyncio.create_task(stop.wait())
        interrupt = asyncio.create_task(inbox.interrupt.wait())
        terminate = asyncio.create_task(inbox.terminate.wait())
        ended_by: str | None = None
        try:
            done, _ = await asyncio.wait({outcome_task, stopper, interrupt, terminate}, timeout=task.timeout_s,
                                         return_when=asyncio.FIRST_COMPLETED)
            if outcome_task in done:
                return None, outcome_task.result()
            if stopper in done:
                ended_by = stop.reason or "cancelled"
            elif interrupt in done or terminate in done:
                ended_by = "interrupted"
            else:
                ended_by = "timeout"
            if ended_by in ("interrupted", "timeout"):
                # The CLI's own interrupt: it ends the turn with an aborted result and keeps the session.
                with contextlib.suppress(ContainerError):
                    await agent.interrupt()
                with contextlib.suppress(TimeoutError):
                    outcome = await asyncio.wait_for(asyncio.shield(outcome_task), _INTERRUPT_GRACE_S)
                    return ended_by, outcome
            await self._runtime.kill(agent.container_id)
            with contextlib.suppress(TimeoutError):
                return ended_by, await asyncio.wait_for(asyncio.shield(outcome_task), _INTERRUPT_GRACE_S)
            return ended_by, None
        finally:
            for pending in (outcome_task, stopper, interrupt, terminate):
                pending.cancel()
            await asyncio.gather(outcome_task, stopper, interrupt, terminate, return_exceptions=True)

    async def _switch_requester(self, task_id: UUID, plan: TurnPlan, workspace: WorkspaceRecord,
                                user_id: UUID) -> bool:
        """Each prompt runs with its author's key, as any follow-up does: the session's capability token is
        re-pointed at the author's credential before the turn (turns of a session never overlap). False,
        with a notice in the feed, when the author has none: the prompt is skipped, the session goes on."""
        if plan.grant is None or plan.grant.user_id == user_id:
            return True
        credential = await self._planner.credential(user_id, workspace.id, plan.driver.provider)
        if credential is None:
            author = (await self._planner.author(user_id))[0]
            await self._bus.emit(task_id, [("notice", {
                "level": "error", "code": "no_credential",
                "message": f"{author}'s prompt was skipped: {author} has no {plan.driver.provider} key and the "
                           "workspace has no team key for it (add one in Settings)"})])
            return False
        plan.grant.user_id = user_id
        plan.grant.credentials = {plan.driver.provider: credential}
        return True

    async def _close_turn(self, task: TaskRecord, workspace: WorkspaceRecord, plan: TurnPlan,
                          container: StartedContainer, turn: _Turn, outcome: TurnOutcome, result: ExecResult,
                          ended_by: str | None) -> tuple[TaskRecord, TaskStatus]:
        """Commit the turn's work and record it on the task, which stays running; then tell viewers."""
        if outcome.cost_usd is None and plan.grant is not None:
            outcome = dataclasses.replace(outcome, cost_usd=round(plan.grant.spent_usd, 6))
            plan.grant.spent_usd = 0.0
        interrupted = ended_by == "interrupted"
        verdict = judge(task, workspace, outcome, result, None if interrupted else ended_by, plan.grant)
        status = TaskStatus.CANCELLED if interrupted else verdict.status
        author = await self._planner.author(turn.user_id)
        turn_task = dataclasses.replace(task, pending_prompt=turn.prompt)
        if ended_by in (None, "interrupted"):
            await self._sync_agent_repository(container.id, turn.prompt, plan.env)
        parent = task.head_commit or task.base_commit or ""
        partial = status != TaskStatus.SUCCEEDED
        snapshot = await self._copies.commit(turn_task, parent, partial=partial, author=author)
        stored = await self._copies.store_state(turn_task, parent, snapshot)
        events = commit_events(turn_task, snapshot, partial) + stored
        if interrupted:
            events.append(("notice", {"level": "info", "code": "interrupted",
                                      "message": "the turn was interrupted; its work so far is committed as partial"}))
        usage = TurnUsage(turns=1, cost_usd=outcome.cost_usd or 0.0, input_tokens=outcome.input_tokens,
                          output_tokens=outcome.output_tokens, cache_read_tokens=outcome.cache_read_tokens,
                          cache_write_tokens=outcome.cache_write_tokens)
        change = TaskChange(set_pending_prompt=True, usage=usage, turn_user_id=turn.user_id,
                            head_commit=snapshot.commit.commit if snapshot.commit else None,
                            session_id=outcome.session_id)
        async with self._bus.batch(task.id) as batch:
            updated = await self._tasks.transition(task.id, TaskStatus.RUNNING, allowed_from=(TaskStatus.RUNNING,),
                                                   conn=batch.conn, error=verdict.error, on_node=self._node,
                                                   change=change)
            await batch.add(events)
        TURNS.labels(status.value).inc()
        if status == TaskStatus.FAILED:
            TURN_FAILURES.labels(verdict.cause or "agent").inc()
        log.info("session.turn_finished", task_id=str(task.id), status=status, seconds=round(
            time.monotonic() - turn.started, 3))
        return (updated or task), status

    async def _sync_agent_repository(self, container_id: str, prompt: str, env: dict[str, str]) -> None:
        """The agent's own commit in its repository, so its next turn starts from a clean `git status`."""
        quiet = {k: v for k, v in env.items() if k == "HOME" or k.startswith("GIT_")}
        with contextlib.suppress(ContainerError):
            async for _ in self._runtime.run(container_id, git_sync_command(commit_title(prompt)), quiet,
                                             ExecResult()):
                pass

    async def _end(self, task_id: UUID, status: TaskStatus, error: str | None) -> None:
        change = TaskChange(finished=True, set_pending_prompt=True)
        async with self._bus.batch(task_id) as batch:
            ended = await self._tasks.transition(task_id, status, allowed_from=(TaskStatus.RUNNING,),
                                                 conn=batch.conn, error=error, on_node=self._node, change=change)
            if ended is None:
                return
            await self._sessions.drop_prompts(task_id, batch.conn)
            data: dict[str, Any] = {"status": status} | ({"error": error} if error else {})
            await batch.add([("notice", {"level": "info", "code": "session_ended",
                                         "message": "the live session ended; a follow-up resumes it"}),
                             ("task.status", data)])
        if self._turn_ended is not None:
            self._turn_ended(ended)
        log.info("session.ended", task_id=str(task_id), status=status, error=error)
