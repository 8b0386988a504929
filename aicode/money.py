"""How an amount of US dollars reads, the same in the browser (static/feed.js `money`) and the CLI."""

from __future__ import annotations

__all__ = ["usd"]


def usd(value: float | None) -> str:
    """"$0.00" for nothing; four decimals under a dollar, where model calls cost fractions of a cent
    ("$0.0123"); cents with thousands separators from a dollar up ("$1,234.50")."""
    value = value or 0.0
    return f"${value:.4f}" if 0 < value < 1 else f"${value:,.2f}"
