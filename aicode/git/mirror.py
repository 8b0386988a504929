"""One bare mirror clone per workspace: created, fetched and removed here (blocking; run in a thread)."""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import pygit2
from pygit2.enums import FetchPrune

__all__ = ["MirrorError", "MirrorState", "clone_mirror", "fetch_mirror", "remove_mirror"]

# Branches and tags land under their own names, as in `git clone --mirror` (without hidden refs).
_REFSPECS = ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"]


class MirrorError(Exception):
    """Clone or fetch failed: `str()` is for the person who registered the repository (it names the
    URL and what to check, never libgit2's own words, which could tell a member about the server's
    network); `cause` is libgit2's text, for the server's log."""

    def __init__(self, message: str, cause: str | None = None) -> None:
        super().__init__(message, cause)

    def __str__(self) -> str:
        return str(self.args[0])

    @property
    def cause(self) -> str | None:
        return self.args[1] if len(self.args) > 1 else None


@dataclass(frozen=True, slots=True)
class MirrorState:
    default_branch: str | None
    branches: tuple[str, ...]


def _callbacks(credential: tuple[str, str] | None) -> pygit2.RemoteCallbacks:
    # Credentials go through callbacks, never into the URL, so they cannot leak into error messages.
    if credential is None:
        return pygit2.RemoteCallbacks()
    return pygit2.RemoteCallbacks(credentials=pygit2.UserPass(*credential))


def _explain(url: str, action: str, exc: pygit2.GitError) -> MirrorError:
    text = str(exc).strip() or exc.__class__.__name__
    lowered = text.lower()
    if "authentication" in lowered or "401" in lowered or "403" in lowered:
        hint = "the remote refused the credentials: check the repository token and its permissions"
    elif "resolve" in lowered or "connect" in lowered or "timed out" in lowered or "timeout" in lowered:
        hint = "the remote could not be reached: check the URL and the server's network access"
    elif "not found" in lowered or "404" in lowered or "could not find repository" in lowered:
        hint = "no repository there (or the token cannot see it): check the URL"
    else:
        hint = "check the URL, then sync the workspace again (its Sync button, or `aicode workspace sync`)"
    return MirrorError(f"{action} {url} failed: {hint}", cause=text)


def _sync(repo: pygit2.Repository, url: str, credential: tuple[str, str] | None, action: str) -> MirrorState:
    remote = repo.remotes["origin"]
    callbacks = _callbacks(credential)
    try:
        heads = remote.list_heads(callbacks=callbacks)
        remote.fetch(refspecs=_REFSPECS, callbacks=callbacks, prune=FetchPrune.PRUNE)
    except pygit2.GitError as exc:
        raise _explain(url, action, exc) from None
    default = next((h.symref_target for h in heads if h.name == "HEAD" and h.symref_target), None)
    branch = default.removeprefix("refs/heads/") if default else None
    if default:
        repo.set_head(default)
    return MirrorState(default_branch=branch, branches=tuple(sorted(repo.branches.local)))


def clone_mirror(url: str, dest: Path, credential: tuple[str, str] | None = None) -> MirrorState:
    """Create the mirror at `dest`; on failure nothing is left behind."""
    staging = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
    staging.parent.mkdir(parents=True, exist_ok=True)
    try:
        repo = pygit2.init_repository(str(staging), bare=True)
        repo.remotes.create("origin", url, _REFSPECS[0])
        repo.remotes.add_fetch("origin", _REFSPECS[1])
        state = _sync(repo, url, credential, "cloning")
        repo.free()
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
        return state
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def fetch_mirror(url: str, dest: Path, credential: tuple[str, str] | None = None) -> MirrorState:
    """Bring the mirror up to date with the remote (branches added, moved and deleted)."""
    try:
        repo = pygit2.Repository(str(dest))
    except pygit2.GitError as exc:
        raise MirrorError(f"the mirror at {dest} is unusable ({exc}); delete and re-add the workspace") from None
    try:
        # The URL is re-applied so a changed remote URL (or token) takes effect.
        repo.remotes.set_url("origin", url)
        return _sync(repo, url, credential, "fetching")
    finally:
        repo.free()


def remove_mirror(dest: Path) -> None:
    shutil.rmtree(dest, ignore_errors=True)
