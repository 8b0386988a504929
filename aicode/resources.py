"""Finds the top-level resource folders (migrations, templates, static) in a checkout or an install."""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["resource_dir"]


def resource_dir(name: str) -> Path:
    """`<checkout>/<name>` when running from source, else `<prefix>/share/aicode/<name>` from the wheel."""
    in_checkout = Path(__file__).resolve().parent.parent / name
    if in_checkout.is_dir():
        return in_checkout
    return Path(sys.prefix) / "share" / "aicode" / name
