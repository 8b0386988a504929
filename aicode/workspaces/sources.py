"""Decides whether a repository location may be registered, and in what form it is kept."""

from __future__ import annotations

import os
import re
import stat
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from aicode.errors import InvalidInputError
from aicode.http.urls import without_userinfo

__all__ = ["RepoSource", "parse_repo_source", "resolve_local_git_dir"]

_SCP_LIKE = re.compile(r"^[\w.-]+@[\w.-]+:")
_DEFAULT_TOKEN_USER = "x-access-token"


@dataclass(frozen=True, slots=True)
class RepoSource:
    """`url` is safe to store and show (no credentials); `credential` is (user, token) or None."""

    url: str
    is_local: bool
    credential: tuple[str, str] | None = field(default=None, repr=False)


def _https(raw: str, token: str | None, scheme: str = "https") -> RepoSource:
    parts = urlsplit(raw)
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        raise InvalidInputError(f"repo_url {without_userinfo(raw)!r} has an invalid port") from None
    if not parts.hostname:
        raise InvalidInputError(f"repo_url {without_userinfo(raw)!r} has no host")
    if parts.query or parts.fragment:
        raise InvalidInputError("repo_url must not carry a query string or fragment")
    user = unquote(parts.username) if parts.username else None
    secret = unquote(parts.password) if parts.password else None
    if user and not secret:
        # https://TOKEN@host/… is how several hosts hand out token URLs.
        user, secret = _DEFAULT_TOKEN_USER, user
    if token:
        secret = token
    name = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname  # an IPv6 literal keeps its brackets
    host = name + (f":{parts.port}" if parts.port else "")
    clean = urlunsplit((scheme, host, parts.path, "", ""))
    # A secret without a user name (https://:TOKEN@host/…, or a token given apart) goes with the user name
    # token URLs use.
    return RepoSource(url=clean, is_local=False,
                      credential=(user or _DEFAULT_TOKEN_USER, secret) if secret else None)


def _local(raw: str, roots: tuple[Path, ...], forbidden: tuple[Path, ...]) -> RepoSource:
    resolve_local_git_dir(raw, roots, forbidden)
    return RepoSource(url=os.path.realpath(raw), is_local=True)


def parse_repo_source(
    raw: str, token: str | None, local_roots: tuple[Path, ...], forbidden: tuple[Path, ...] = (),
    allow_insecure: bool = False,
) -> RepoSource:
    """Accept an https URL (optionally with a token) or an absolute path under an allowed root
    (see `resolve_local_git_dir`; `forbidden` are folders such as the server's data dir); plain
    http only with `allow_insecure` (AICODE_ALLOW_INSECURE_REMOTES)."""
    raw = raw.strip()
    if not raw or any(ch.isspace() or ord(ch) < 32 for ch in raw):
        raise InvalidInputError("repo_url must be a non-empty URL or path without spaces or control characters")
    if "::" in raw.split("/", 1)[0] or raw.lower().startswith("ext::"):
        raise InvalidInputError("remote-helper URLs (such as ext::) are not allowed")
    if raw.startswith("/"):
        if token:
            raise InvalidInputError("repo_token only applies to https repositories")
        return _local(raw, local_roots, forbidden)
    scheme = urlsplit(raw).scheme.lower()
    if scheme == "https":
        return _https(raw, token)
    if scheme == "file":
        raise InvalidInputError("file:// URLs are not allowed: give the absolute path of a repository instead")
    if scheme == "http" and allow_insecure:
        return _https(raw, token, "http")
    if scheme == "http":
        raise InvalidInputError("plain http is not allowed (credentials and code would travel unencrypted): use https")
    if scheme in ("ssh", "git+ssh") or _SCP_LIKE.match(raw):
        raise InvalidInputError("ssh repositories are not supported yet: use an https URL with a token")
    if scheme:
        raise InvalidInputError(f"the {scheme}:// scheme is not allowed: use an https URL or a local path")
    raise InvalidInputError(f"{without_userinfo(raw)!r} is neither an https URL nor an absolute path")


# -- local repositories -----------------------------------------------------------------------------
# libgit2 (which clones and fetches local repositories) follows a repository's own indirections:
# a `.git` gitfile, `commondir`, a symlinked `objects`, and `objects/info/alternates`. Each of them
# could lead to git data outside the allowed roots (another workspace's mirror, any folder on the
# server), so every place libgit2 would read objects or refs from is checked, the way libgit2 finds it.

_MAX_POINTER_BYTES = 64 * 1024
_MAX_ALTERNATES_DEPTH = 5
_GIT_SPACE = " \t\n\v\f\r"  # git__isspace: what libgit2 trims around gitfile and commondir paths
_GITFILE_PREFIX = "gitdir:"


def _shown(location: object) -> str:
    # Paths in messages come from files the member wrote: keep them short and printable.
    text = str(location)
    text = text if len(text) <= 200 else text[:200] + "…"
    return text if text.isprintable() else repr(text)


def _within(path: Path, folders: tuple[Path, ...]) -> bool:
    return any(path == folder or path.is_relative_to(folder) for folder in folders)


@dataclass(frozen=True, slots=True)
class _Scope:
    """Where the git data of repository `repo` (as the member named it) may live."""

    repo: str
    roots: tuple[Path, ...]
    forbidden: tuple[Path, ...]

    def refuse(self, problem: str) -> InvalidInputError:
        return InvalidInputError(f"{self.repo}: {problem}")

    def require(self, location: Path, what: str) -> Path:
        """The real path of `location`; refused when it leads outside the roots or into a forbidden folder."""
        real = Path(os.path.realpath(location))
        # Name `what` (as the repository spells it), never `real`: resolving a member's symlinks must
        # not tell them where things are on the server.
        if not _within(real, self.roots):
            allowed = ", ".join(str(root) for root in self.roots)
            raise self.refuse(f"{what} leads outside the folders this server allows ({allowed}): "
                              "keep all of the repository's git data under those folders")
        if _within(real, self.forbidden):
            raise self.refuse(
                f"{what} leads into this server's own data folder: register a repository of your own, "
                "not one of the server's copies"
            )
        return real


def _read_pointer_file(path: Path, scope: _Scope) -> str:
    """The text of a small regular file (gitfile, commondir, alternates), read without blocking."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then refuses it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as exc:
        raise scope.refuse(f"cannot read {_shown(path)} ({exc.strerror}): check its permissions") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise scope.refuse(f"{_shown(path)} is not a regular file: replace it with a plain text file")
        data = b""
        while len(data) <= _MAX_POINTER_BYTES and (chunk := os.read(fd, _MAX_POINTER_BYTES + 1 - len(data))):
            data += chunk
    finally:
        os.close(fd)
    if len(data) > _MAX_POINTER_BYTES:
        limit = _MAX_POINTER_BYTES // 1024
        raise scope.refuse(f"{_shown(path)} is larger than {limit} KiB: git never writes one so big")
    if b"\0" in data:
        raise scope.refuse(f"{_shown(path)} contains a NUL byte: it should hold only paths")
    return os.fsdecode(data)


def _common_dir(git_dir: Path, scope: _Scope) -> Path:
    """`git_dir`'s `commondir` (linked worktrees keep objects and refs there), or `git_dir` itself."""
    link = git_dir / "commondir"
    if not os.path.lexists(link):
        return git_dir
    text = _read_pointer_file(scope.require(link, f"the commondir file {_shown(link)}"), scope)
    target = text.rstrip(_GIT_SPACE)
    # An absolute target replaces git_dir in the join; a relative one is relative to git_dir.
    return scope.require(git_dir / target, f"the commondir {_shown(target)} named in {_shown(link)}")


def _as_git_dir(candidate: Path, what: str, scope: _Scope) -> tuple[Path, Path] | None:
    """(git dir, common dir) when `candidate` is a git directory as libgit2 judges one, else None."""
    git_dir = scope.require(candidate, what)
    if not git_dir.is_dir():
        return None
    common = _common_dir(git_dir, scope)
    if not ((git_dir / "HEAD").is_file() and (common / "objects").is_dir() and (common / "refs").is_dir()):
        return None
    return git_dir, common


def _follow_gitfile(dot_git: Path, folder: Path, scope: _Scope) -> tuple[Path, Path]:
    text = _read_pointer_file(dot_git, scope).rstrip(_GIT_SPACE)
    if len(text) <= len(_GITFILE_PREFIX) or not text.startswith(_GITFILE_PREFIX):
        raise scope.refuse(f"{_shown(dot_git)} is a file but not a gitfile: it should read 'gitdir: <path>'")
    target = text[len(_GITFILE_PREFIX):].lstrip(_GIT_SPACE)
    what = f"the git directory {_shown(target)} named in {_shown(dot_git)}"
    # One level, as git and libgit2 do: the target must be a git directory, not another gitfile.
    found = _as_git_dir(folder / target, what, scope)
    if found is None:
        raise scope.refuse(f"{what} is not a git directory: fix the gitfile or register the repository itself")
    return found


def _locate_git_dir(folder: Path, scope: _Scope) -> tuple[Path, Path] | None:
    """(git dir, common dir) in libgit2's order: `<folder>/.git` first, then `folder` as a bare repository."""
    dot_git = folder / ".git"
    try:
        mode = os.stat(dot_git).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise scope.refuse(f"cannot inspect {_shown(dot_git)} ({exc.strerror}): check its permissions") from None
    if mode is not None:
        scope.require(dot_git, _shown(dot_git))
        if stat.S_ISREG(mode):
            return _follow_gitfile(dot_git, folder, scope)
        if not stat.S_ISDIR(mode):
            raise scope.refuse(f"{_shown(dot_git)} is neither a folder nor a gitfile: remove it or replace it")
        found = _as_git_dir(dot_git, _shown(dot_git), scope)
        if found is not None:
            return found
    return _as_git_dir(folder, _shown(folder), scope)


def _check_refs(git_dir: Path, common: Path, scope: _Scope) -> None:
    # Refs name the objects a fetch copies; symlinked ones would show another repository's branches.
    for location in (git_dir / "HEAD", common / "refs", common / "packed-refs"):
        if os.path.lexists(location):
            scope.require(location, _shown(location))


def _refuse_symlinked_entries(store: Path, real: Path, scope: _Scope) -> None:
    """No symlink directly in an object store, its `pack` or its `info`: libgit2 would follow it."""
    for sub in ("", "pack", "info"):
        # `real` itself is scanned first, so `pack` and `info` are known not to be symlinks when scanned.
        try:
            with os.scandir(real / sub) as entries:
                links = [entry.name for entry in entries if entry.is_symlink()]
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            problem = f"cannot list {_shown(store / sub)} ({exc.strerror}): check its permissions"
            raise scope.refuse(problem) from None
        if links:
            link = store / sub / min(links)
            raise scope.refuse(
                f"{_shown(link)} is a symlink: libgit2 would follow it to objects stored elsewhere; "
                "replace it with the real file or folder"
            )


def _alternates(store: Path, real: Path, depth: int, scope: _Scope) -> list[tuple[Path, str]]:
    """The object stores `store` borrows from, each with how to name it in a message."""
    if os.path.lexists(real / "info" / "http-alternates"):
        raise scope.refuse(f"{_shown(store / 'info' / 'http-alternates')} is not allowed: remove it")
    listing = real / "info" / "alternates"
    if not os.path.lexists(listing):
        return []
    shown_listing = _shown(store / "info" / "alternates")
    found = []
    # libgit2 splits on both CR and LF and trims nothing.
    for line in re.split(r"[\r\n]", _read_pointer_file(listing, scope)):
        if not line or line.startswith("#"):
            continue
        what = f"the alternate object store {_shown(line)} listed in {shown_listing}"
        if line.startswith("/"):
            found.append((Path(line), what))
        elif depth == 0 and line.startswith("."):
            found.append((real / line, what))  # relative to the objects folder, as git and libgit2 agree
        else:
            # libgit2 resolves any other relative alternate against the server's working directory.
            raise scope.refuse(f"{what} is a relative path git and libgit2 read differently: write it as an "
                               "absolute path (or as ./… or ../… in the repository's own alternates file)")
    return found


def _check_object_stores(objects: Path, scope: _Scope) -> None:
    """The objects folder and every alternate store it borrows from, breadth first, each store once."""
    pending: deque[tuple[Path, int, str]] = deque([(objects, 0, f"the objects folder {_shown(objects)}")])
    seen: set[Path] = set()
    while pending:
        store, depth, what = pending.popleft()
        real = scope.require(store, what)
        if real in seen:
            continue  # a cycle of alternates: each of its stores has been checked already
        seen.add(real)
        if depth > _MAX_ALTERNATES_DEPTH:
            raise scope.refuse(f"{what} is nested more than {_MAX_ALTERNATES_DEPTH} alternates deep: "
                               "point the alternates file at the store that holds the objects")
        if not real.is_dir():
            if depth == 0:
                raise scope.refuse(f"{what} is missing: is this a complete git repository?")
            continue  # libgit2 skips alternates that do not exist
        _refuse_symlinked_entries(store, real, scope)
        pending.extend((path, depth + 1, shown) for path, shown in _alternates(store, real, depth, scope))


def resolve_local_git_dir(path: Path | str, roots: tuple[Path, ...], forbidden: tuple[Path, ...] = ()) -> Path:
    """The real git directory of the repository at `path`; InvalidInputError unless the folder, its git
    dir, commondir, objects folder and every alternate store lie under one of `roots` and in none of
    `forbidden`. Cheap enough to call before every fetch: it reads no loose objects."""
    if not roots:
        raise InvalidInputError(
            "registering repositories by local path is disabled on this server: "
            "an admin can allow folders with AICODE_LOCAL_REPO_ROOTS"
        )
    if not os.path.isabs(path):
        raise InvalidInputError(f"{_shown(path)} is not an absolute path")
    scope = _Scope(
        repo=_shown(path),
        roots=tuple(Path(os.path.realpath(root)) for root in roots),
        forbidden=tuple(Path(os.path.realpath(folder)) for folder in forbidden),
    )
    # realpath first, so a symlink inside an allowed root cannot point outside it.
    folder = Path(os.path.realpath(path))
    if not _within(folder, scope.roots):
        allowed = ", ".join(str(root) for root in scope.roots)
        raise InvalidInputError(f"{scope.repo} is outside the folders this server allows ({allowed})")
    if _within(folder, scope.forbidden):
        raise InvalidInputError(
            f"{scope.repo} is inside this server's own data folder: register a repository of your own, "
            "not one of the server's copies"
        )
    if not folder.is_dir():
        raise InvalidInputError(f"{scope.repo} does not exist or is not a folder")
    found = _locate_git_dir(folder, scope)
    if found is None:
        raise InvalidInputError(f"{scope.repo} is not a git repository")
    git_dir, common = found
    _check_refs(git_dir, common, scope)
    _check_object_stores(common / "objects", scope)
    return git_dir
