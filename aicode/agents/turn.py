"""What a driver is given for one turn: the prompt and options, and the way to the model gateway."""

from __future__ import annotations

from dataclasses import dataclass, field

from aicode.agents.events import TokenCount

__all__ = ["AgentTurn", "ModelAccess"]


@dataclass(frozen=True)
class ModelAccess:
    """How the agent reaches the model: the gateway's URL and the turn's capability token (never a key)."""

    base_url: str
    token: str = field(repr=False)


@dataclass(frozen=True)
class AgentTurn:
    """One prompt for the agent, continuing `resume_session_id` when set."""

    prompt: str
    model: str | None = None
    max_turns: int | None = None
    resume_session_id: str | None = None
    append_system_prompt: str | None = None
    # None → --dangerously-skip-permissions: the container is the sandbox, and nobody is there to approve.
    permission_mode: str | None = None
    # What the agent's session used before this turn, for CLIs that report a resumed session's running
    # totals rather than the turn's own figures (Codex).
    usage_before: TokenCount = TokenCount()
    # A live session: the agent reads its prompts from stdin, one per turn, and `prompt` is unused.
    live: bool = False

    def __post_init__(self) -> None:
        if not self.live and not self.prompt.strip():
            raise ValueError("the prompt is empty")
        if self.max_turns is not None and self.max_turns < 1:
            raise ValueError("max_turns must be at least 1")
        strings = (self.prompt, self.model, self.resume_session_id, self.append_system_prompt, self.permission_mode)
        # An argv element cannot hold a NUL byte: exec would fail far from the cause.
        if any(value is not None and "\x00" in value for value in strings):
            raise ValueError("agent arguments cannot contain NUL characters")
