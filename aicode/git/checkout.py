"""Per-task working copies: made from the workspace mirror, committed, and diffed (blocking; run in a thread)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pygit2

__all__ = [
    "CheckoutError",
    "CommitInfo",
    "FileChange",
    "commit_all",
    "create_checkout",
    "diff_files",
    "diff_patch",
    "hand_over",
    "head_commit",
]

# Checkouts belong to the agent's uid while it works in them; libgit2 would then refuse to open
# them ("not owned by current user"). The server opens only checkouts it created, so it turns the
# check off for itself. Nothing else in the process opens repositories it did not make.
pygit2.option(pygit2.enums.Option.SET_OWNER_VALIDATION, 0)


class CheckoutError(Exception):
    """The task's working copy could not be made; the message says why."""


@dataclass(frozen=True, slots=True)
class CommitInfo:
    commit: str
    files_changed: int
    additions: int
    deletions: int


@dataclass(frozen=True, slots=True)
class FileChange:
    path: str
    status: str
    additions: int
    deletions: int


def create_checkout(mirror: Path, dest: Path, base_branch: str, branch: str) -> str:
    """Clone the mirror to `dest` with `branch` made from `base_branch`; returns the base commit."""
    try:
        source = pygit2.Repository(str(mirror))
        if base_branch not in source.branches.local:
            known = ", ".join(sorted(source.branches.local)) or "none"
            raise CheckoutError(f"branch {base_branch!r} does not exist in the repository (branches: {known})")
        source.free()
        repo = pygit2.clone_repository(str(mirror), str(dest), checkout_branch=base_branch)
    except pygit2.GitError as exc:
        raise CheckoutError(f"could not make the task's working copy: {exc}") from None
    base = repo.head.peel(pygit2.Commit)
    repo.branches.local.create(branch, base)
    repo.checkout(f"refs/heads/{branch}")
    # The origin is a path on the server, meaningless inside the container.
    repo.remotes.delete("origin")
    repo.free()
    return str(base.id)


def hand_over(path: Path, uid: int, gid: int) -> None:
    """Make every file under `path` owned by uid:gid, so the agent can write what the server created."""
    if os.geteuid() != 0:
        return  # a non-root server runs the agent with its own uid: nothing to hand over
    os.lchown(path, uid, gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), uid, gid)


def commit_all(checkout: Path, message: str, author: tuple[str, str], committer: tuple[str, str]) -> CommitInfo | None:
    """Commit every change in the working tree (new, modified, deleted; .gitignore respected) on HEAD.

    Returns None when the tree is unchanged, so a turn that changed nothing makes no empty commit.
    """
    repo = pygit2.Repository(str(checkout))
    try:
        repo.index.add_all()
        repo.index.write()
        tree = repo.index.write_tree()
        parent = repo.head.peel(pygit2.Commit)
        if tree == parent.tree.id:
            return None
        oid = repo.create_commit(
            "HEAD", pygit2.Signature(*author), pygit2.Signature(*committer), message, tree, [parent.id]
        )
        stats = repo.diff(parent, repo[oid]).stats
        return CommitInfo(commit=str(oid), files_changed=stats.files_changed, additions=stats.insertions,
                          deletions=stats.deletions)
    finally:
        repo.free()


def head_commit(checkout: Path) -> str:
    repo = pygit2.Repository(str(checkout))
    try:
        return str(repo.head.target)
    finally:
        repo.free()


def diff_patch(checkout: Path, base: str, head: str) -> str:
    repo = pygit2.Repository(str(checkout))
    try:
        return repo.diff(base, head).patch or ""
    finally:
        repo.free()


_STATUS = {"A": "added", "D": "deleted", "M": "modified", "R": "renamed", "C": "copied", "T": "type_changed"}


def diff_files(checkout: Path, base: str, head: str) -> list[FileChange]:
    repo = pygit2.Repository(str(checkout))
    try:
        diff = repo.diff(base, head)
        diff.find_similar()
        changes = []
        for patch in diff:
            _, additions, deletions = patch.line_stats
            delta = patch.delta
            changes.append(FileChange(path=delta.new_file.path, status=_STATUS.get(delta.status_char(), "modified"),
                                      additions=additions, deletions=deletions))
        return changes
    finally:
        repo.free()
