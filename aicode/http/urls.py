"""Keeping credentials embedded in URLs (`https://user:token@host/…`) out of what is shown back."""

from __future__ import annotations

import re

__all__ = ["redact_userinfo", "without_userinfo"]

# The authority runs to the first '/', '?' or '#'; its userinfo ends at the authority's last '@'
# (a password may hold a raw '@'). Without a scheme, `token@host/repo` counts as an authority too.
_LEADING_USERINFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)?[^/?#\s]*@")
_EMBEDDED_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s'\"<>]*@")


def without_userinfo(url: str) -> str:
    """`url` without its userinfo: `https://user:token@host/r.git` → `https://host/r.git`; paths are unchanged."""
    return _LEADING_USERINFO.sub(lambda found: found.group("scheme") or "", url.strip(), count=1)


def redact_userinfo(text: str) -> str:
    """`text` with the userinfo of every `scheme://user:secret@host` URL in it removed."""
    return _EMBEDDED_USERINFO.sub(lambda found: found.group("scheme"), text)
