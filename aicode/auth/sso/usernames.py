"""Usernames for people provisioned through single sign-on, derived from their token's claims."""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["username_base", "username_candidates"]

_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9._-]+")
# Room for a "-NN" suffix within the 64 characters USERNAME_PATTERN allows.
_BASE_MAX = 56
_NUMBERED = 50


def _clean(raw: str) -> str:
    """`raw` as a valid username: accents dropped, other characters as '-', starting with a letter or digit."""
    ascii_only = unicodedata.normalize("NFKD", raw).encode("ascii", "ignore").decode()
    cleaned = _NOT_ALLOWED.sub("-", ascii_only).lstrip("._-")
    return cleaned[:_BASE_MAX].rstrip("._-")


def username_base(claims: Mapping[str, Any]) -> str:
    """The first usable of `preferred_username` (its local part if it is an address), the email's local
    part, and `sub`; "user" when none gives a valid name."""
    for claim in ("preferred_username", "email", "sub"):
        value = claims.get(claim)
        if not isinstance(value, str):
            continue
        if claim != "sub":
            value = value.partition("@")[0]
        if name := _clean(value):
            return name
    return "user"


def username_candidates(claims: Mapping[str, Any]) -> Iterator[str]:
    """Names to try in order: the base, then base-2 … base-50, then base-<random hex> for ever."""
    base = username_base(claims)
    yield base
    for number in range(2, _NUMBERED + 1):
        yield f"{base}-{number}"
    while True:
        yield f"{base}-{secrets.token_hex(3)}"
