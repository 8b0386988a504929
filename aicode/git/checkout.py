"""Task branches in the workspace mirror: made, committed to, compared. Runs in the git worker.

A task's branch is the ref `refs/aicode/tasks/<id>` in its workspace's mirror, a repository only
the server writes and no container ever mounts. The agent gets a working copy made from it (with
a `.git` of its own, which the server never reads again); what the agent leaves there comes back
as tree entries (`aicode.git.worktree`) and is committed here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pygit2

from aicode.git.diffstat import patches
from aicode.git.worktree import MODE_EXECUTABLE, MODE_FILE, MODE_GITLINK, MODE_LINK, TreeEntry

_MODE_TREE = 0o040000

__all__ = [
    "CheckoutError",
    "CommitInfo",
    "FileChange",
    "branch_exists",
    "commit_entries",
    "delete_ref",
    "diff_files",
    "diff_patch",
    "make_working_copy",
]


class CheckoutError(Exception):
    """The task's working copy or commit could not be made; the message says why."""


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


def _open(mirror: Path) -> pygit2.Repository:
    try:
        return pygit2.Repository(str(mirror))
    except pygit2.GitError as exc:
        raise CheckoutError(f"the workspace's mirror is unusable ({exc}): sync or re-add the workspace") from None


def branch_exists(mirror: Path, branch: str) -> bool:
    repo = _open(mirror)
    try:
        return branch in repo.branches.local
    finally:
        repo.free()


def _safe_name(name: str) -> bool:
    # Tree entry names come from the repository a member registered: never let one climb out of
    # the working copy or write a `.git` of its own.
    return bool(name) and name not in (".", "..") and "/" not in name and "\0" not in name \
        and name.lower() != ".git"


def _write_tree(repo: pygit2.Repository, tree: pygit2.Tree, folder: Path, prefix: str,
                entries: list[TreeEntry]) -> None:
    """Write the tree's files as they are stored (no attribute filters), recording each entry."""
    for item in tree:
        name = item.name or ""
        if not _safe_name(name):
            raise CheckoutError(f"the repository holds a path git refuses to check out: {prefix}{name!r}")
        path, target = prefix + name, folder / name
        mode = int(item.filemode)
        if mode == _MODE_TREE:
            target.mkdir(0o755)
            _write_tree(repo, repo[item.id].peel(pygit2.Tree), target, path + "/", entries)
            continue
        if mode == MODE_GITLINK:
            target.mkdir(0o755)  # an uninitialised submodule: an empty folder, as git leaves it
        elif mode == MODE_LINK:
            os.symlink(repo[item.id].peel(pygit2.Blob).data, os.fsencode(target))
        elif mode in (MODE_FILE, MODE_EXECUTABLE):
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(target, flags, 0o755 if mode == MODE_EXECUTABLE else 0o644)
            with os.fdopen(fd, "wb") as out:
                out.write(repo[item.id].peel(pygit2.Blob).data)
        else:
            continue
        entries.append(TreeEntry(path, mode, str(item.id)))


def make_working_copy(mirror: Path, dest: Path, base_branch: str, branch: str, ref: str
                      ) -> tuple[str, list[TreeEntry]]:
    """Point `ref` at the tip of `base_branch` and make a working copy of it in the new folder `dest`:
    the files, and a `.git` (the agent's) whose `branch` holds the history. Returns (base, entries)."""
    source = _open(mirror)
    try:
        if base_branch not in source.branches.local:
            known = ", ".join(sorted(source.branches.local)) or "none"
            raise CheckoutError(f"branch {base_branch!r} does not exist in the repository (branches: {known})")
        base = source.branches.local[base_branch].peel(pygit2.Commit)
        source.references.create(ref, base.id, force=True)
    finally:
        source.free()
    return str(base.id), _fill_working_copy(mirror, dest, branch, ref, base.id)


def working_copy_at(mirror: Path, dest: Path, branch: str, ref: str, head: str) -> list[TreeEntry]:
    """Point `ref` at `head` (a commit already in the mirror) and make a working copy of it in the new
    folder `dest`, as `make_working_copy` does: how another node takes up a task."""
    source = _open(mirror)
    try:
        commit = source[head].peel(pygit2.Commit)
        source.references.create(ref, commit.id, force=True)
    except (pygit2.GitError, KeyError, ValueError) as exc:
        raise CheckoutError(f"the task's last commit is not in this node's store ({exc})") from None
    finally:
        source.free()
    return _fill_working_copy(mirror, dest, branch, ref, commit.id)


def _fill_working_copy(mirror: Path, dest: Path, branch: str, ref: str, commit_id: pygit2.Oid) -> list[TreeEntry]:
    repo = pygit2.init_repository(str(dest), bare=False, initial_head=branch)
    try:
        # A fetch, not a local clone: libgit2's local clone may hard-link object files, and the
        # agent would then own (and could rewrite) files of the server's store.
        remote = repo.remotes.create_anonymous(str(mirror))
        remote.fetch([f"+{ref}:refs/heads/{branch}"])
        commit = repo[commit_id]
        entries: list[TreeEntry] = []
        _write_tree(repo, commit.tree, dest, "", entries)
        repo.index.read_tree(commit.tree)
        repo.index.write()
    except pygit2.GitError as exc:
        raise CheckoutError(f"could not make the task's working copy: {exc}") from None
    finally:
        repo.free()
    return entries


def commit_entries(mirror: Path, ref: str, parent: str, entries: list[TreeEntry], message: str,
                   author: tuple[str, str], committer: tuple[str, str]) -> tuple[CommitInfo | None, list[str]]:
    """Commit the tree `entries` describe on `ref` after `parent`: (the commit, or None when the tree
    equals the parent's; the paths left out because git refuses such names, e.g. `git~1`, `.git.`)."""
    repo = _open(mirror)
    refused: list[str] = []
    try:
        index = pygit2.Index()
        for entry in entries:
            try:
                index.add(pygit2.IndexEntry(entry.path, pygit2.Oid(hex=entry.oid), pygit2.enums.FileMode(entry.mode)))
            except (pygit2.GitError, ValueError, OSError):
                refused.append(entry.path)
        tree = index.write_tree(repo)
        base = repo[parent].peel(pygit2.Commit)
        if tree == base.tree.id:
            return None, refused
        oid = repo.create_commit(None, pygit2.Signature(*author), pygit2.Signature(*committer), message, tree,
                                 [base.id])
        repo.references.create(ref, oid, force=True)
        stats = repo.diff(base, repo[oid].peel(pygit2.Commit)).stats
        return CommitInfo(commit=str(oid), files_changed=stats.files_changed, additions=stats.insertions,
                          deletions=stats.deletions), refused
    except (pygit2.GitError, KeyError, ValueError) as exc:
        raise CheckoutError(f"could not commit the turn's changes: {exc}") from None
    finally:
        repo.free()


def delete_ref(mirror: Path, ref: str) -> None:
    repo = _open(mirror)
    try:
        if ref in repo.references:
            repo.references.delete(ref)
    finally:
        repo.free()


def diff_patch(mirror: Path, base: str, head: str) -> str:
    repo = _open(mirror)
    try:
        return repo.diff(base, head).patch or ""
    finally:
        repo.free()


_STATUS = {"A": "added", "D": "deleted", "M": "modified", "R": "renamed", "C": "copied", "T": "type_changed"}


def diff_files(mirror: Path, base: str, head: str) -> list[FileChange]:
    repo = _open(mirror)
    try:
        diff = repo.diff(base, head)
        diff.find_similar()
        changes = []
        for patch in patches(diff):
            _, additions, deletions = patch.line_stats
            delta = patch.delta
            changes.append(FileChange(path=delta.new_file.path, status=_STATUS.get(delta.status_char(), "modified"),
                                      additions=additions, deletions=deletions))
        return changes
    finally:
        repo.free()
