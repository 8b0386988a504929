"""Finds the top-level resource folders (migrations, templates, static) in a checkout or an install."""

from __future__ import annotations

import sysconfig
from pathlib import Path

__all__ = ["resource_dir", "resource_file"]


def resource_dir(name: str) -> Path:
    """`<checkout>/<name>` when running from source, else `<data>/share/aicode/<name>` from the wheel."""
    in_checkout = Path(__file__).resolve().parent.parent / name
    if in_checkout.is_dir():
        return in_checkout
    # The scheme's data path, not sys.prefix: Debian's Python installs into /usr/local with prefix /usr.
    return Path(sysconfig.get_path("data")) / "share" / "aicode" / name


def resource_file(name: str) -> Path:
    """`<checkout>/<name>` when running from source, else `<data>/share/aicode/<name>` (the Containerfile)."""
    in_checkout = Path(__file__).resolve().parent.parent / name
    if in_checkout.is_file():
        return in_checkout
    return Path(sysconfig.get_path("data")) / "share" / "aicode" / name
