"""Reads a model call's usage out of the Messages API answer as it streams past, without holding it."""

from __future__ import annotations

from typing import Any

import msgspec

from aicode.gateway.models import ModelUsage
from aicode.gateway.prices import PriceTable

__all__ = ["UsageMeter"]

# One line is the most the meter holds. A non-streaming answer is one compact JSON line, so this also
# bounds the plain-JSON case; a longer line is skipped (an answer that big is no usage report).
_MAX_LINE = 16 * 1024 * 1024
_TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")


class UsageMeter:
    """Fed the answer body chunk by chunk (`feed`), it reports what the call used (`finish`); never raises."""

    def __init__(self, prices: PriceTable, provider: str = "anthropic") -> None:
        self._prices = prices
        self._provider = provider
        self._pending = bytearray()
        self._overflowed = False
        self._model: str | None = None
        self._tokens: dict[str, int] = {}
        self._one_hour_writes = 0
        self._seen = False

    def feed(self, chunk: bytes) -> None:
        """Take the next bytes of the body exactly as they passed."""
        start = 0
        while (end := chunk.find(b"\n", start)) != -1:
            if self._overflowed:
                self._overflowed = False  # the oversized line ends here; it is dropped
            elif self._pending:
                self._pending += chunk[start:end]
                self._line(bytes(self._pending))
            else:
                self._line(chunk[start:end])
            self._pending.clear()
            start = end + 1
        rest = len(chunk) - start
        if self._overflowed or len(self._pending) + rest > _MAX_LINE:
            self._overflowed = True
            self._pending.clear()
        elif rest:
            self._pending += chunk[start:]

    def finish(self) -> ModelUsage | None:
        """What the call used, priced by the table; None when the answer carried no usage at all."""
        if self._pending and not self._overflowed:
            self._line(bytes(self._pending))  # a JSON body need not end with a newline
        self._pending.clear()
        if not self._seen:
            return None
        tokens = self._tokens
        model = self._model or "unknown"
        writes = tokens.get("cache_creation_input_tokens", 0)
        one_hour = min(self._one_hour_writes, writes)
        cost = self._prices.cost(
            model, tokens.get("input_tokens", 0), tokens.get("output_tokens", 0),
            tokens.get("cache_read_input_tokens", 0), writes - one_hour, cache_write_1h_tokens=one_hour,
        )
        return ModelUsage(
            provider=self._provider, model=model, input_tokens=tokens.get("input_tokens", 0),
            output_tokens=tokens.get("output_tokens", 0), cache_read_tokens=tokens.get("cache_read_input_tokens", 0),
            cache_write_tokens=writes, cost_usd=cost,
        )

    def _line(self, line: bytes) -> None:
        # Only lines that mention usage are parsed: the many content deltas of a long answer are not.
        if b'"usage"' not in line:
            return
        line = line.strip()
        if line.startswith(b"data:"):
            line = line[5:].strip()
        try:
            event = msgspec.json.decode(line)
        except msgspec.DecodeError:
            return
        if isinstance(event, dict):
            self._event(event)

    def _event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "message_start" and isinstance(event.get("message"), dict):
            self._message(event["message"])
        elif kind == "message_delta":
            # Counts in message_delta are cumulative for the call: they replace, never add.
            self._usage(event.get("usage"))
        elif "usage" in event:  # a plain JSON answer: the message itself
            self._message(event)

    def _message(self, message: dict[str, Any]) -> None:
        if isinstance(message.get("model"), str):
            self._model = message["model"]
        self._usage(message.get("usage"))

    def _usage(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        self._seen = True
        for name in _TOKEN_FIELDS:
            value = usage.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                self._tokens[name] = value
        creation = usage.get("cache_creation")
        if isinstance(creation, dict):
            value = creation.get("ephemeral_1h_input_tokens")
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                self._one_hour_writes = value
