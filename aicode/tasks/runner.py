"""Runs one turn of a task: working copy → hardened container → agent exec → events → commit."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import structlog

from aicode.agents.claude import AgentTurn, ClaudeDriver, ClaudeStreamParser
from aicode.agents.events import TurnOutcome
from aicode.agents.lines import LineSplitter
from aicode.auth.repo import UserRepo
from aicode.background import BackgroundTasks
from aicode.containers.policy import ContainerSpec, Mount
from aicode.containers.runtime import STDERR, ContainerError, ContainerRuntime, ExecResult
from aicode.credentials.service import CredentialService
from aicode.git.checkout import CheckoutError, CommitInfo, commit_all, create_checkout, hand_over
from aicode.streaming.bus import TaskEventBus
from aicode.tasks.models import TaskRecord, TaskStatus
from aicode.tasks.repo import TaskRepo
from aicode.workspaces.models import WorkspaceRecord
from aicode.workspaces.repo import WorkspaceRepo

__all__ = ["RunnerConfig", "StopSignal", "TaskRunner"]

log = structlog.get_logger(__name__)

AGENT_HOME = "/home/agent"
CONFIG_DIR = f"{AGENT_HOME}/.claude"
# Variables that give the agent a way to reach a model without a stored per-user credential.
_MODEL_ACCESS_VARS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN",
                      "CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX")
_KILL_GRACE_S = 10.0
_STDERR_TAIL = 4096
_MAX_EVENT_BATCH = 2000
_CRASHED = ("the server stopped while this task was running; what the agent had written is committed as partial. "
            "Send a follow-up to continue")


@dataclass(frozen=True, slots=True)
class RunnerConfig:
    data_dir: Path
    server_id: str
    default_image: str
    default_network: str
    agent_env: dict[str, str] = field(default_factory=dict, repr=False)
    agent_uid: int = 1000
    agent_gid: int = 1000


class StopSignal:
    """Asks a running turn to stop, saying why: `cancelled` by a user or `shutdown` of the server."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._event = asyncio.Event()

    def stop(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self._event.set()

    async def wait(self) -> None:
        await self._event.wait()


class TurnFailure(Exception):
    """The turn could not run (no checkout, no image, no credential): the message is the task's error."""


@dataclass(slots=True)
class TurnReport:
    status: str
    error: str | None
    outcome: TurnOutcome | None = None
    commit: CommitInfo | None = None
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def _commit_event(task: TaskRecord, commit: CommitInfo | None, partial: bool) -> tuple[str, dict[str, Any]]:
    if commit is None:
        return "notice", {"level": "info", "code": "no_changes", "message": "the turn changed no files: no commit was made"}
    return "git.commit", {"commit": commit.commit, "branch": task.branch, "files_changed": commit.files_changed,
                          "additions": commit.additions, "deletions": commit.deletions, "partial": partial}


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
        runtime: ContainerRuntime, credentials: CredentialService, users: UserRepo,
        mirror_path: Callable[[UUID], Path],
    ) -> None:
        self._config = config
        self._tasks = tasks
        self._workspaces = workspaces
        self._bus = bus
        self._runtime = runtime
        self._credentials = credentials
        self._mirror_path = mirror_path
        self._users = users
        self._driver = ClaudeDriver()
        self._removals = BackgroundTasks()

    async def drain(self) -> None:
        """Wait for container removals still in flight (at shutdown)."""
        await self._removals.join()

    def task_dir(self, task_id: UUID) -> Path:
        return self._config.data_dir / "tasks" / str(task_id)

    def checkout_path(self, task_id: UUID) -> Path:
        return self.task_dir(task_id) / "checkout"

    async def run(self, task_id: UUID, stop: StopSignal) -> None:
        """Run the task's pending turn, if it is still queued, and record how it ended."""
        async with self._bus.batch(task_id) as batch:
            task = await self._tasks.transition(task_id, TaskStatus.RUNNING, allowed_from=(TaskStatus.QUEUED,),
                                                conn=batch.conn, started=True)
            if task is None:
                return  # cancelled while it waited in the queue
            await batch.add([("task.status", {"status": TaskStatus.RUNNING})])
        log.info("task.turn_started", task_id=str(task_id), turn=task.turns + 1)
        try:
            report = await self._turn(task, stop)
        except TurnFailure as exc:
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
        checkout = self.checkout_path(task.id)
        commit = None
        if (checkout / ".git").exists():
            try:
                commit = await self._commit(task, checkout, partial=True)
            except Exception as exc:  # a damaged working copy must not stop the server from starting
                log.warning("task.salvage_failed", task_id=str(task.id), exc_info=exc)
        report = TurnReport(status=TaskStatus.INTERRUPTED, error=_CRASHED,
                            commit=commit, events=[_commit_event(task, commit, True)] if commit else [])
        await self._finish(task, report)
        log.warning("task.interrupted_by_restart", task_id=str(task.id), salvaged=commit is not None)

    # -- the turn --------------------------------------------------------------------------------

    async def _turn(self, task: TaskRecord, stop: StopSignal) -> TurnReport:
        clock = PhaseClock()
        workspace = await self._workspaces.get(task.workspace_id)
        if workspace is None:
            raise TurnFailure("the workspace was deleted")
        argv, env = await self._agent_command(task)
        checkout, claude_dir = self.checkout_path(task.id), self.task_dir(task.id) / "claude"
        for folder in (checkout, claude_dir):
            folder.mkdir(parents=True, exist_ok=True)
        # The container starts while the working copy is made: neither needs the other until the exec.
        starting = asyncio.create_task(self._start_container(task, workspace, checkout, claude_dir))
        try:
            await self._prepare_checkout(task, workspace, checkout)
            await asyncio.to_thread(hand_over, self.task_dir(task.id), self._config.agent_uid,
                                    self._config.agent_gid)
        except BaseException:
            with contextlib.suppress(Exception):
                self._removals.spawn(self._runtime.remove(await starting), name=f"remove-{task.id}")
            raise
        clock.lap("prepare")
        container_id = await starting
        clock.lap("container")
        parser = self._driver.parser()
        result = ExecResult()
        try:
            stderr_tail, ended_by = await self._watch(task, container_id, argv, env, parser, result, stop)
        finally:
            clock.lap("agent")
            # Removal is off the critical path: the turn's outcome does not depend on it.
            self._removals.spawn(self._runtime.remove(container_id), name=f"remove-{container_id[:12]}")
        events, outcome = parser.finish(result.exit_code, stderr_tail)
        status, error = self._judge(task, workspace, outcome, result, ended_by)
        partial = ended_by is not None or status != TaskStatus.SUCCEEDED
        commit = await self._commit(task, checkout, partial=partial)
        clock.lap("commit")
        # The last agent events, the commit and the status go out in the turn's final transaction.
        closing = [(e.type, e.data) for e in events] + [_commit_event(task, commit, partial)]
        return TurnReport(status=status, error=error, outcome=outcome, commit=commit, events=closing,
                          timings=clock.laps)

    async def _watch(
        self, task: TaskRecord, container_id: str, argv: list[str], env: dict[str, str],
        parser: ClaudeStreamParser, result: ExecResult, stop: StopSignal,
    ) -> tuple[str, str | None]:
        """Stream the agent's output until it exits, is stopped, or times out; returns (stderr tail, why ended)."""
        tail = bytearray()
        reader = asyncio.create_task(self._pump(task.id, container_id, argv, env, parser, result, tail))
        stopper = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait({reader, stopper}, timeout=task.timeout_s,
                                         return_when=asyncio.FIRST_COMPLETED)
            ended_by = None if reader in done else (stop.reason or "cancelled") if stopper in done else "timeout"
            if ended_by is not None:
                await self._runtime.kill(container_id)
                # A reader that fails because the container was killed under it (a cancel right as the
                # agent starts) is expected: the turn ended the way `ended_by` says, not by that error.
                with contextlib.suppress(TimeoutError, ContainerError):
                    await asyncio.wait_for(asyncio.shield(reader), _KILL_GRACE_S)
            if ended_by is None and reader.done() and reader.exception() is not None:
                exc = reader.exception()
                raise TurnFailure(str(exc)) if isinstance(exc, ContainerError) else exc  # type: ignore[misc]
            return tail.decode(errors="replace"), ended_by
        finally:
            for pending in (reader, stopper):
                pending.cancel()
            await asyncio.gather(reader, stopper, return_exceptions=True)

    async def _pump(
        self, task_id: UUID, container_id: str, argv: list[str], env: dict[str, str],
        parser: ClaudeStreamParser, result: ExecResult, tail: bytearray,
    ) -> None:
        """Turn output chunks into events; a separate writer stores whatever has piled up in one transaction."""
        pending: asyncio.Queue[list[tuple[str, dict[str, Any]]] | None] = asyncio.Queue()
        writer = asyncio.create_task(self._write_events(task_id, pending))
        lines = LineSplitter()
        try:
            async for chunk in self._runtime.run(container_id, argv, env, result):
                if chunk.stream == STDERR:
                    tail.extend(chunk.data)
                    del tail[:-_STDERR_TAIL]
                    continue
                events = [e for line in lines.feed(chunk.data) for e in parser.feed(line)]
                if events:
                    pending.put_nowait([(e.type, e.data) for e in events])
            trailing = [e for line in lines.flush() for e in parser.feed(line)]
            if trailing:
                pending.put_nowait([(e.type, e.data) for e in trailing])
        finally:
            pending.put_nowait(None)
            await writer

    async def _write_events(self, task_id: UUID, pending: asyncio.Queue[list[tuple[str, dict[str, Any]]] | None]
                            ) -> None:
        """Batch by backlog: one event when the agent is quiet, thousands per transaction when it floods."""
        while (first := await pending.get()) is not None:
            batch, finished = list(first), False
            while not pending.empty() and len(batch) < _MAX_EVENT_BATCH:
                more = pending.get_nowait()
                if more is None:
                    finished = True
                    break
                batch.extend(more)
            await self._bus.emit(task_id, batch)
            if finished:
                return

    # -- steps -----------------------------------------------------------------------------------

    async def _start_container(self, task: TaskRecord, workspace: WorkspaceRecord, checkout: Path,
                               claude_dir: Path) -> str:
        try:
            return await self._runtime.start(self._container_spec(task, workspace, checkout, claude_dir))
        except ContainerError as exc:
            raise TurnFailure(str(exc)) from None

    async def _prepare_checkout(self, task: TaskRecord, workspace: WorkspaceRecord, checkout: Path) -> None:
        """Clone the mirror into the (empty) checkout folder on the first turn; later turns reuse it."""
        if (checkout / ".git").exists():
            return
        mirror = self._mirror_path(workspace.id)
        try:
            base = await asyncio.to_thread(create_checkout, mirror, checkout, task.base_branch, task.branch)
        except CheckoutError as exc:
            raise TurnFailure(str(exc)) from None
        await self._tasks.set_base_commit(task.id, base)

    async def _agent_command(self, task: TaskRecord) -> tuple[list[str], dict[str, str]]:
        credential = await self._credentials.for_agent(task.user_id)
        if credential is None and not any(name in self._config.agent_env for name in _MODEL_ACCESS_VARS):
            raise TurnFailure(
                "no Anthropic credential: store yours with PUT /api/me/credentials/anthropic "
                "(an api_key, or an oauth_token from `claude setup-token`)"
            )
        name, email = await self._author(task)
        env = self._driver.environment(credential, self._config.agent_env, CONFIG_DIR)
        # Commits the agent makes itself carry the same identities as the ones aicode makes.
        env.update({"HOME": AGENT_HOME, "GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email,
                    "GIT_COMMITTER_NAME": "aicode", "GIT_COMMITTER_EMAIL": "aicode@aicode.invalid"})
        turn = AgentTurn(prompt=task.pending_prompt or task.prompt, model=task.model, max_turns=task.max_turns,
                         resume_session_id=task.session_id)
        return self._driver.command(turn), env

    def _container_spec(self, task: TaskRecord, workspace: WorkspaceRecord, checkout: Path, claude_dir: Path
                        ) -> ContainerSpec:
        limits = workspace.limits
        kwargs: dict[str, Any] = {k: limits[k] for k in ("memory_mb", "cpus", "pids") if limits.get(k)}
        return ContainerSpec(
            image=workspace.image or self._config.default_image,
            name=f"aicode-{task.id.hex[:12]}-{task.turns + 1}",
            user=f"{self._config.agent_uid}:{self._config.agent_gid}",
            labels={"aicode.server": self._config.server_id, "aicode.workspace": str(workspace.id),
                    "aicode.task": str(task.id)},
            mounts=(Mount(str(checkout), "/workspace"), Mount(str(claude_dir), CONFIG_DIR)),
            network=workspace.network or self._config.default_network,
            home=AGENT_HOME,
            **kwargs,
        )

    def _judge(
        self, task: TaskRecord, workspace: WorkspaceRecord, outcome: TurnOutcome, result: ExecResult,
        ended_by: str | None,
    ) -> tuple[str, str | None]:
        """The turn's status and error, from why it ended and what the agent reported."""
        if ended_by == "shutdown":
            return TaskStatus.INTERRUPTED, "the server stopped during the turn; the work so far is committed as partial"
        if ended_by == "cancelled":
            return TaskStatus.CANCELLED, None
        if ended_by == "timeout":
            return TaskStatus.FAILED, (f"timed out after {task.timeout_s} s (the task's timeout_s); "
                                       "the work so far is committed as partial")
        if result.oom_killed or (result.exit_code == 137 and not outcome.ok):
            memory = workspace.limits.get("memory_mb") or "the default"
            return TaskStatus.FAILED, (f"the agent was killed by the container's memory limit ({memory} MB): "
                                       "raise limits.memory_mb on the workspace")
        if outcome.ok:
            return TaskStatus.SUCCEEDED, None
        return TaskStatus.FAILED, outcome.error or f"the agent failed (exit code {result.exit_code})"

    async def _commit(self, task: TaskRecord, checkout: Path, *, partial: bool) -> CommitInfo | None:
        """Commit the turn's changes on the task branch, author the requesting user, committer aicode."""
        prompt = (task.pending_prompt or task.prompt).strip()
        title = prompt.splitlines()[0][:72] if prompt else "aicode task"
        message = f"{'[partial] ' if partial else ''}{title}\n\n{prompt}\n\naicode-task: {task.id}\n"
        author = await self._author(task)
        return await asyncio.to_thread(commit_all, checkout, message, author, ("aicode", "aicode@aicode.invalid"))

    async def _author(self, task: TaskRecord) -> tuple[str, str]:
        user = await self._users.get(task.user_id)
        name = user.username if user is not None else "aicode"
        return name, f"{name}@aicode.invalid"

    async def _finish(self, task: TaskRecord, report: TurnReport) -> None:
        outcome = report.outcome
        usage: dict[str, Any] = {}
        if outcome is not None:
            usage = {"cost_usd": outcome.cost_usd or 0.0, "input_tokens": outcome.input_tokens,
                     "output_tokens": outcome.output_tokens, "cache_read_tokens": outcome.cache_read_tokens,
                     "cache_write_tokens": outcome.cache_write_tokens, "session_id": outcome.session_id}
        async with self._bus.batch(task.id) as batch:
            await self._tasks.transition(
                task.id, report.status, allowed_from=(TaskStatus.RUNNING,), conn=batch.conn, error=report.error,
                finished=True, turns=1, pending_prompt=None,
                head_commit=report.commit.commit if report.commit else None, **usage,
            )
            data = {"status": report.status} | ({"error": report.error} if report.error else {})
            await batch.add([*report.events, ("task.status", data)])
        log.info("task.turn_finished", task_id=str(task.id), status=report.status, error=report.error,
                 timings_ms=report.timings)
