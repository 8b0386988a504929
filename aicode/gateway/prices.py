"""The model price table: USD per million tokens per model family, shipped with aicode, overridable."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import msgspec

__all__ = ["ModelPrice", "PriceTable"]

_SHIPPED = "prices.json"
# Anthropic bills a one-hour cache write at twice the base input rate (a five-minute one at 1.25x,
# which the table lists as `cache_write`); a rule of the price list, not a per-model number.
_ONE_HOUR_WRITE_FACTOR = 2.0

_Price = Annotated[float, msgspec.Meta(ge=0)]


class _Rates(msgspec.Struct, forbid_unknown_fields=True):
    input: _Price
    output: _Price
    cache_write: _Price
    cache_read: _Price


class _LongContext(_Rates):
    above_input_tokens: Annotated[int, msgspec.Meta(gt=0)]


class _Entry(_Rates):
    long_context: _LongContext | None = None


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """One family's rates in USD per million tokens; `cache_write` is a five-minute cache write."""

    input: float
    output: float
    cache_write: float
    cache_read: float
    # 1M-context models bill the WHOLE request at higher rates once its prompt passes a threshold.
    long_context: ModelPrice | None = None
    long_context_above: int = 0

    def rates_for(self, prompt_tokens: int) -> ModelPrice:
        """The rates that apply to a request whose prompt (input + cache reads + writes) has this size."""
        if self.long_context is not None and prompt_tokens > self.long_context_above:
            return self.long_context
        return self


@dataclass(frozen=True, slots=True)
class PriceTable:
    """Prices by model-name prefix: the longest matching prefix wins."""

    families: Mapping[str, ModelPrice]

    @classmethod
    def load(cls, override: Path | None = None) -> PriceTable:
        """The shipped table, with the families of an operator's file (same shape) replacing or adding entries."""
        shipped = resources.files("aicode.gateway").joinpath(_SHIPPED)
        families = _parse(shipped.read_text(encoding="utf-8"), f"aicode/gateway/{_SHIPPED}")
        if override is not None:
            try:
                text = override.read_text(encoding="utf-8")
            except OSError as exc:
                raise ValueError(f"price file {override}: cannot be read ({exc.strerror or exc})") from exc
            families = {**families, **_parse(text, str(override))}
        return cls(families)

    def price_for(self, model: str) -> ModelPrice:
        """The rates of the family with the longest prefix of `model`; the most expensive rates if none matches."""
        name = model.strip().lower()
        best = max((prefix for prefix in self.families if name.startswith(prefix)), key=len, default=None)
        if best is None:
            # An unknown model (a new release, a typo, a name we never saw) is priced as the most
            # expensive family: a budget must never be under-counted because the table is behind.
            return self.most_expensive
        return self.families[best]

    @property
    def most_expensive(self) -> ModelPrice:
        """Per rate, the highest any family (or its long-context tier) charges."""
        tiers = [tier for price in self.families.values() for tier in (price, price.long_context) if tier is not None]
        return ModelPrice(
            input=max((t.input for t in tiers), default=0.0),
            output=max((t.output for t in tiers), default=0.0),
            cache_write=max((t.cache_write for t in tiers), default=0.0),
            cache_read=max((t.cache_read for t in tiers), default=0.0),
        )

    def cost(self, model: str, input_tokens: int, output_tokens: int, cache_read_tokens: int = 0,
             cache_write_tokens: int = 0, *, cache_write_1h_tokens: int = 0) -> float:
        """USD for one call; `cache_write_tokens` are five-minute writes, `cache_write_1h_tokens` one-hour ones."""
        prompt = input_tokens + cache_read_tokens + cache_write_tokens + cache_write_1h_tokens
        rates = self.price_for(model).rates_for(prompt)
        micro_usd = (input_tokens * rates.input + output_tokens * rates.output
                     + cache_read_tokens * rates.cache_read + cache_write_tokens * rates.cache_write
                     + cache_write_1h_tokens * rates.input * _ONE_HOUR_WRITE_FACTOR)
        return micro_usd / 1_000_000


def _parse(text: str, source: str) -> dict[str, ModelPrice]:
    """Families from a price file's text; ValueError naming `source` and the entry on any mistake."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"price file {source}: not valid JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise ValueError(f"price file {source}: expected an object of model families, got {type(raw).__name__}")
    return {_family_name(name, source): _entry(name, value, source) for name, value in raw.items()}


def _family_name(name: str, source: str) -> str:
    if not name.strip():
        raise ValueError(f"price file {source}: a model family name is empty")
    return name.strip().lower()


def _entry(name: str, value: Any, source: str) -> ModelPrice:
    try:
        entry = msgspec.convert(value, _Entry)
    except msgspec.ValidationError as exc:
        raise ValueError(f"price file {source}: entry {name!r}: {exc} (prices are USD per million tokens, "
                         "each of input, output, cache_write, cache_read a number >= 0)") from exc
    long_context = entry.long_context
    return ModelPrice(
        entry.input, entry.output, entry.cache_write, entry.cache_read,
        long_context=None if long_context is None else ModelPrice(
            long_context.input, long_context.output, long_context.cache_write, long_context.cache_read),
        long_context_above=0 if long_context is None else long_context.above_input_tokens,
    )
