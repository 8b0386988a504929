"""Which driver runs a task's agent: chosen by `task.agent` from the drivers this server has.

A driver builds the agent CLI's command line and environment for a turn, and a parser that turns
the CLI's output into the task's events; every agent CLI is driven through the same three calls.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from aicode.agents.claude import ClaudeDriver
from aicode.agents.codex import CodexDriver
from aicode.agents.events import AgentEvent, TurnOutcome
from aicode.agents.gemini import GeminiDriver
from aicode.agents.lines import Line
from aicode.agents.turn import AgentTurn, ModelAccess

__all__ = ["AGENTS", "AgentDriver", "StreamParser", "UnknownAgent", "driver_for"]


class StreamParser(Protocol):
    def feed(self, line: Line) -> list[AgentEvent]:
        """Events for one line of the agent's output."""

    def finish(self, exit_code: int | None, stderr_tail: str) -> tuple[list[AgentEvent], TurnOutcome]:
        """The last events and the turn's outcome, once the agent exited."""


class AgentDriver(Protocol):
    name: str
    label: str  # for people: "Claude Code", "OpenAI Codex", …
    provider: str  # whose model API it calls, and so which credential a turn needs
    executable: str  # the CLI's name on the image's PATH
    config_dir: str  # where in the container it keeps its state: the task's volume, kept across turns
    default_model: str | None
    models: tuple[str, ...]  # models to offer; any other name the provider knows works too
    live: bool  # takes a session's prompts on stdin, one process throughout (else one process per prompt)

    def command(self, turn: AgentTurn, access: ModelAccess | None) -> list[str]:
        """The agent's argv for `turn` (reaching the model as `access` says)."""

    def environment(self, access: ModelAccess | None, passthrough: Mapping[str, str], config_dir: str
                    ) -> dict[str, str]:
        """The agent's environment: its way to the model gateway, and where it keeps its state."""

    def parser(self, turn: AgentTurn) -> StreamParser:
        """A fresh parser for one run of the command."""


_DRIVERS: dict[str, Callable[[], AgentDriver]] = {"claude": ClaudeDriver, "codex": CodexDriver,
                                                  "gemini": GeminiDriver}
AGENTS = tuple(_DRIVERS)


class UnknownAgent(ValueError):
    """A task names an agent this server has no driver for."""


def driver_for(agent: str) -> AgentDriver:
    try:
        return _DRIVERS[agent]()
    except KeyError:
        raise UnknownAgent(f"no driver for the agent {agent!r} on this server (known: {', '.join(AGENTS)})") from None
