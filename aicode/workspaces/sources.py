"""Decides whether a repository location may be registered, and in what form it is kept."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from aicode.errors import InvalidInputError

__all__ = ["RepoSource", "parse_repo_source"]

_SCP_LIKE = re.compile(r"^[\w.-]+@[\w.-]+:")
_DEFAULT_TOKEN_USER = "x-access-token"


@dataclass(frozen=True, slots=True)
class RepoSource:
    """`url` is safe to store and show (no credentials); `credential` is (user, token) or None."""

    url: str
    is_local: bool
    credential: tuple[str, str] | None = field(default=None, repr=False)


def _https(raw: str, token: str | None) -> RepoSource:
    parts = urlsplit(raw)
    if not parts.hostname:
        raise InvalidInputError(f"repo_url {raw!r} has no host")
    if parts.query or parts.fragment:
        raise InvalidInputError("repo_url must not carry a query string or fragment")
    user = unquote(parts.username) if parts.username else None
    secret = unquote(parts.password) if parts.password else None
    if user and not secret:
        # https://TOKEN@host/… is how several hosts hand out token URLs.
        user, secret = _DEFAULT_TOKEN_USER, user
    if token:
        secret, user = token, user or _DEFAULT_TOKEN_USER
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    clean = urlunsplit(("https", host, parts.path, "", ""))
    return RepoSource(url=clean, is_local=False, credential=(user, secret) if secret else None)


def _local(raw: str, roots: tuple[Path, ...]) -> RepoSource:
    if not roots:
        raise InvalidInputError(
            "registering repositories by local path is disabled on this server: "
            "an admin can allow folders with AICODE_LOCAL_REPO_ROOTS"
        )
    path = Path(os.path.realpath(raw))
    # realpath first, so a symlink inside an allowed root cannot point outside it.
    if not any(path == root or path.is_relative_to(root) for root in roots):
        allowed = ", ".join(str(r) for r in roots)
        raise InvalidInputError(f"{raw} is outside the folders this server allows ({allowed})")
    if not path.is_dir():
        raise InvalidInputError(f"{raw} does not exist or is not a folder")
    if not ((path / ".git").exists() or ((path / "HEAD").is_file() and (path / "objects").is_dir())):
        raise InvalidInputError(f"{raw} is not a git repository")
    return RepoSource(url=str(path), is_local=True)


def parse_repo_source(raw: str, token: str | None, local_roots: tuple[Path, ...]) -> RepoSource:
    """Accept an https URL (optionally with a token) or an absolute path under an allowed root."""
    raw = raw.strip()
    if not raw or any(ch.isspace() or ord(ch) < 32 for ch in raw):
        raise InvalidInputError("repo_url must be a non-empty URL or path without spaces or control characters")
    if "::" in raw.split("/", 1)[0] or raw.lower().startswith("ext::"):
        raise InvalidInputError("remote-helper URLs (such as ext::) are not allowed")
    if raw.startswith("/"):
        if token:
            raise InvalidInputError("repo_token only applies to https repositories")
        return _local(raw, local_roots)
    scheme = urlsplit(raw).scheme.lower()
    if scheme == "https":
        return _https(raw, token)
    if scheme == "file":
        raise InvalidInputError("file:// URLs are not allowed: give the absolute path of a repository instead")
    if scheme == "http":
        raise InvalidInputError("plain http is not allowed (credentials and code would travel unencrypted): use https")
    if scheme in ("ssh", "git+ssh") or _SCP_LIKE.match(raw):
        raise InvalidInputError("ssh repositories are not supported yet: use an https URL with a token")
    if scheme:
        raise InvalidInputError(f"the {scheme}:// scheme is not allowed: use an https URL or a local path")
    raise InvalidInputError(f"{raw!r} is neither an https URL nor an absolute path")
