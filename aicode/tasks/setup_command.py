"""The workspace's setup command (`npm ci`, say), run in the turn's container before the agent's first
turn on a working copy: its output streamed as events, its time limited, its failure the task's."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from uuid import UUID

from aicode.agents.events import AgentEvent, TurnOutcome
from aicode.agents.lines import Line
from aicode.containers.runtime import ExecResult
from aicode.storage.layout import DataLayout
from aicode.tasks.events import TaskEventBus
from aicode.tasks.execution import AgentExecution, StopSignal
from aicode.tasks.turn_plan import AGENT_HOME
from aicode.workspaces.models import WorkspaceRecord

__all__ = ["DEFAULT_SETUP_TIMEOUT_S", "SetupCommands", "SetupResult"]

DEFAULT_SETUP_TIMEOUT_S = 600
_LINES_STREAMED = 2000  # beyond this the output is only counted: an install can print a great deal
_TAIL_LINES = 30
_LINE_CHARS = 2000


@dataclass(frozen=True, slots=True)
class SetupResult:
    """`ended_by`: None when the command exited by itself, else cancelled, shutdown, lost or timeout."""

    ok: bool
    ended_by: str | None
    error: str | None


class _SetupOutput:
    """A parser for the setup command's output (stderr joined to stdout): each line an event."""

    def __init__(self) -> None:
        self.lines = 0
        self.tail: deque[str] = deque(maxlen=_TAIL_LINES)

    def feed(self, line: Line) -> list[AgentEvent]:
        text = line.text[:_LINE_CHARS]
        self.lines += 1
        self.tail.append(text)
        if self.lines > _LINES_STREAMED:
            return []
        return [AgentEvent("setup.output", {"text": text})]

    def finish(self, exit_code: int | None, stderr_tail: str) -> tuple[list[AgentEvent], TurnOutcome]:
        outcome = TurnOutcome(ok=exit_code == 0, session_id=None, result_text=None, num_turns=None, duration_ms=None,
                              cost_usd=None, input_tokens=0, output_tokens=0, cache_read_tokens=0,
                              cache_write_tokens=0, error=None)
        return [], outcome


class SetupCommands:
    def __init__(self, execution: AgentExecution, bus: TaskEventBus, layout: DataLayout) -> None:
        self._execution = execution
        self._bus = bus
        self._layout = layout

    def needed(self, task_id: UUID, workspace: WorkspaceRecord) -> bool:
        """A setup command that has not yet run in this node's working copy of the task."""
        return bool(workspace.setup) and not self._layout.setup_done(task_id).exists()

    async def run(self, task_id: UUID, container_id: str, workspace: WorkspaceRecord, stop: StopSignal) -> SetupResult:
        assert workspace.setup
        timeout_s = workspace.setup_timeout_s or DEFAULT_SETUP_TIMEOUT_S
        await self._bus.emit(task_id, [("setup.started", {"command": workspace.setup, "timeout_s": timeout_s})])
        started = time.monotonic()
        output = _SetupOutput()
        result = ExecResult()
        # No model credential and no gateway token: the command needs neither. Its network is the container's.
        argv = ["sh", "-c", "exec 2>&1\n" + workspace.setup]
        _, ended_by = await self._execution.watch(task_id, container_id, argv, {"HOME": AGENT_HOME}, timeout_s,
                                                  output, result, stop)
        duration_ms = int((time.monotonic() - started) * 1000)
        ok = ended_by is None and result.exit_code == 0
        await self._bus.emit(task_id, [("setup.finished", {
            "ok": ok, "exit_code": result.exit_code, "duration_ms": duration_ms, "lines": output.lines})])
        if ok:
            await asyncio.to_thread(self._layout.setup_done(task_id).touch)
            return SetupResult(ok=True, ended_by=None, error=None)
        tail = "\n".join(output.tail).strip()
        if ended_by == "timeout":
            why = f"the setup command did not finish within {timeout_s} s (the workspace's setup_timeout_s)"
        elif ended_by is not None:
            return SetupResult(ok=False, ended_by=ended_by, error=None)
        else:
            why = f"the setup command failed (exit code {result.exit_code})"
        return SetupResult(ok=False, ended_by=ended_by, error=why + (f"; its output ended with:\n{tail}" if tail else ""))
