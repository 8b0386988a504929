"""Reads a model call's usage out of its answer as it streams past, without holding it: the Messages API's
(Anthropic), the Responses API's (OpenAI) and the Gemini API's."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import msgspec

from aicode.gateway.models import ModelUsage
from aicode.gateway.prices import PriceTable

__all__ = ["GeminiUsageMeter", "Meter", "OpenAIUsageMeter", "UsageMeter"]

# One line is the most the meter holds. A non-streaming answer is one compact JSON line, so this also
# bounds the plain-JSON case; a longer line is skipped (an answer that big is no usage report).
_MAX_LINE = 16 * 1024 * 1024
_TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")


class Meter(ABC):
    """Fed the answer body chunk by chunk (`feed`), it reports what the call used (`finish`); never raises.

    SSE `data:` lines and plain JSON bodies alike are read line by line; only lines that mention usage
    are parsed, so the many content deltas of a long answer are not."""

    def __init__(self) -> None:
        self._pending = bytearray()
        self._overflowed = False
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
        return self._usage_seen() if self._seen else None

    @abstractmethod
    def _event(self, event: dict[str, Any]) -> None:
        """Take one decoded JSON object that mentions usage."""

    @abstractmethod
    def _usage_seen(self) -> ModelUsage:
        """The call's usage, once some was seen."""

    def _line(self, line: bytes) -> None:
        if b'"usage' not in line:  # "usage" (Anthropic, OpenAI) or "usageMetadata" (Gemini)
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


class UsageMeter(Meter):
    """The Messages API's usage: message_start's, then message_delta's cumulative counts."""

    def __init__(self, prices: PriceTable, provider: str = "anthropic") -> None:
        super().__init__()
        self._prices = prices
        self._provider = provider
        self._model: str | None = None
        self._tokens: dict[str, int] = {}
        self._one_hour_writes = 0

    def _usage_seen(self) -> ModelUsage:
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


def _count(usage: dict[str, Any], key: str) -> int:
    value = usage.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


class OpenAIUsageMeter(Meter):
    """The Responses API's usage, in `response.completed` (or a plain JSON response object).

    `input_tokens` includes the cached ones and `output_tokens` the reasoning ones: cached input is
    billed at the cache-read rate, so it is counted apart."""

    def __init__(self, prices: PriceTable, model: str | None = None) -> None:
        super().__init__()
        self._prices = prices
        self._model = model
        self._usage: dict[str, Any] = {}

    def _event(self, event: dict[str, Any]) -> None:
        nested = event.get("response")
        response: dict[str, Any] = nested if isinstance(nested, dict) else event
        usage = response.get("usage")
        if not isinstance(usage, dict):
            return
        self._seen = True
        self._usage = usage
        if isinstance(response.get("model"), str):
            self._model = response["model"]

    def _usage_seen(self) -> ModelUsage:
        details = self._usage.get("input_tokens_details")
        cached = _count(details, "cached_tokens") if isinstance(details, dict) else 0
        total_input = _count(self._usage, "input_tokens")
        cached = min(cached, total_input)
        output = _count(self._usage, "output_tokens")
        model = self._model or "unknown"
        cost = self._prices.cost(model, total_input - cached, output, cached, 0)
        return ModelUsage(provider="openai", model=model, input_tokens=total_input - cached, output_tokens=output,
                          cache_read_tokens=cached, cost_usd=cost)


class GeminiUsageMeter(Meter):
    """The Gemini API's `usageMetadata`, repeated on stream chunks with running totals (the last one counts).

    `promptTokenCount` includes cached content; thoughts are billed as output."""

    def __init__(self, prices: PriceTable, model: str | None = None) -> None:
        super().__init__()
        self._prices = prices
        self._model = model
        self._usage: dict[str, Any] = {}

    def _event(self, event: dict[str, Any]) -> None:
        usage = event.get("usageMetadata")
        if not isinstance(usage, dict):
            return
        self._seen = True
        self._usage = usage
        if isinstance(event.get("modelVersion"), str):
            self._model = event["modelVersion"]

    def _usage_seen(self) -> ModelUsage:
        prompt = _count(self._usage, "promptTokenCount")
        cached = min(_count(self._usage, "cachedContentTokenCount"), prompt)
        output = _count(self._usage, "candidatesTokenCount") + _count(self._usage, "thoughtsTokenCount")
        model = self._model or "unknown"
        cost = self._prices.cost(model, prompt - cached, output, cached, 0)
        return ModelUsage(provider="gemini", model=model, input_tokens=prompt - cached, output_tokens=output,
                          cache_read_tokens=cached, cost_usd=cost)
