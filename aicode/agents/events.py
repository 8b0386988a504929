"""The normalized events every agent driver emits, and the summary of one agent turn."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["LIVE_ONLY", "AgentEvent", "TokenCount", "TurnOutcome", "cap_utf8", "notice", "tail_utf8", "turn_completed"]


# Event types sent to live viewers only, never stored: `message.delta` {message_id, text} is text as the
# model generates it; the whole `message` still follows, so a replay misses nothing.
LIVE_ONLY = frozenset({"message.delta"})


@dataclass(frozen=True, slots=True)
class AgentEvent:
    """One normalized event; `data` is JSON-serialisable and shaped per SPEC "Event model"."""

    type: str  # "agent.started" | "message" | "tool.call" | "tool.result" | "usage" | "notice" | "turn.completed"
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class TurnOutcome:
    """What the engine stores about one agent turn once the agent process has ended."""

    ok: bool
    session_id: str | None
    result_text: str | None
    num_turns: int | None
    duration_ms: int | None
    cost_usd: float | None
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    error: str | None


@dataclass(frozen=True, slots=True)
class TokenCount:
    """Token counts as a `usage` event reports them; adds up across API messages."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0

    @classmethod
    def from_usage(cls, usage: dict[str, Any]) -> TokenCount:
        """Counts from an Anthropic Messages API `usage` object (missing or odd fields count as 0)."""

        def count(key: str) -> int:
            value = usage.get(key)
            return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0

        return cls(
            input=count("input_tokens"),
            output=count("output_tokens"),
            cache_read=count("cache_read_input_tokens"),
            cache_write=count("cache_creation_input_tokens"),
        )

    def __add__(self, other: TokenCount) -> TokenCount:
        return TokenCount(
            self.input + other.input,
            self.output + other.output,
            self.cache_read + other.cache_read,
            self.cache_write + other.cache_write,
        )

    def maximum(self, other: TokenCount) -> TokenCount:
        """Field by field, the larger of two counts of the same message."""
        return TokenCount(
            max(self.input, other.input),
            max(self.output, other.output),
            max(self.cache_read, other.cache_read),
            max(self.cache_write, other.cache_write),
        )

    def as_data(self, cost_usd: float | None) -> dict[str, Any]:
        """The `usage` event's data."""
        return {
            "input_tokens": self.input,
            "output_tokens": self.output,
            "cache_read_tokens": self.cache_read,
            "cache_write_tokens": self.cache_write,
            "cost_usd": cost_usd,
        }


def turn_completed(outcome: TurnOutcome) -> AgentEvent:
    """The `turn.completed` event of a turn that ended as `outcome` says."""
    data: dict[str, Any] = {"status": "succeeded" if outcome.ok else "failed", "result": outcome.result_text,
                            "num_turns": outcome.num_turns, "duration_ms": outcome.duration_ms,
                            "cost_usd": outcome.cost_usd}
    if outcome.error is not None:
        data["error"] = outcome.error
    return AgentEvent("turn.completed", data)


def notice(level: str, code: str, message: str, **extra: Any) -> AgentEvent:
    """A `notice` event; `level` is "info", "warning" or "error"."""
    return AgentEvent("notice", {"level": level, "code": code, "message": message, **extra})


def cap_utf8(text: str, max_bytes: int) -> tuple[str, bool]:
    """`text` cut to at most `max_bytes` UTF-8 bytes on a character boundary, and whether it was cut."""
    # Cheap exit first: no string of at most max_bytes/4 characters can exceed max_bytes bytes.
    if len(text) * 4 <= max_bytes:
        return text, False
    encoded = text.encode("utf-8", errors="surrogatepass")
    if len(encoded) <= max_bytes:
        return text, False
    # errors="ignore" drops the partial character the byte cut may leave at the end.
    return encoded[:max_bytes].decode("utf-8", errors="ignore"), True


def tail_utf8(text: str, max_bytes: int) -> str:
    """The last `max_bytes` UTF-8 bytes of `text`, starting on a character boundary."""
    encoded = text.encode("utf-8", errors="surrogatepass")
    if len(encoded) <= max_bytes:
        return text
    return encoded[-max_bytes:].decode("utf-8", errors="ignore")
