"""Moving a task's commits onto the latest base branch (runs in the git worker).

Each commit of the task is replayed on the new base with a three-way merge of trees, in memory: the
working copy and the task's ref stay as they are until the whole series applied cleanly, so a conflict
leaves the task exactly as it was.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pygit2

from aicode.git.checkout import CheckoutError

__all__ = ["RebaseResult", "rebase_commits", "set_ref"]

_MAX_COMMITS = 10_000
_MAX_CONFLICTS_SHOWN = 200


@dataclass(frozen=True, slots=True)
class RebaseResult:
    """`head` is the rebased head (None when a conflict stopped it); `onto` the new base commit."""

    onto: str
    head: str | None
    conflicts: list[str] = field(default_factory=list)
    replayed: int = 0


def _series(repo: pygit2.Repository, base: pygit2.Oid, head: pygit2.Oid) -> list[pygit2.Commit]:
    """The task's commits from `base` (excluded) to `head`, oldest first, following first parents."""
    series: list[pygit2.Commit] = []
    commit = repo[head].peel(pygit2.Commit)
    while commit.id != base:
        if len(series) >= _MAX_COMMITS or not commit.parent_ids:
            raise CheckoutError("the task's branch does not start at its base commit: it cannot be rebased")
        series.append(commit)
        commit = repo[commit.parent_ids[0]].peel(pygit2.Commit)
    series.reverse()
    return series


def _conflict_paths(index: pygit2.Index) -> list[str]:
    paths: set[str] = set()
    for ancestor, ours, theirs in index.conflicts or ():
        for entry in (ancestor, ours, theirs):
            if entry is not None:
                paths.add(entry.path)
    return sorted(paths)[:_MAX_CONFLICTS_SHOWN]


def rebase_commits(mirror: Path, base: str, head: str, onto_branch: str,
                   committer: tuple[str, str]) -> RebaseResult:
    """Replay base..head on the tip of `onto_branch`; the new commits are written, no ref is moved."""
    repo = pygit2.Repository(str(mirror))
    try:
        if onto_branch not in repo.branches.local:
            raise CheckoutError(f"the base branch {onto_branch!r} is not in the repository any more")
        onto = repo.branches.local[onto_branch].peel(pygit2.Commit)
        series = _series(repo, pygit2.Oid(hex=base), pygit2.Oid(hex=head))
        if onto.id == pygit2.Oid(hex=base):
            return RebaseResult(onto=str(onto.id), head=head)
        signature = pygit2.Signature(*committer)
        tip = onto
        for commit in series:
            parent = repo[commit.parent_ids[0]].peel(pygit2.Commit)
            index = repo.merge_trees(parent.tree, tip.tree, commit.tree)
            if index.conflicts is not None:
                return RebaseResult(onto=str(onto.id), head=None, conflicts=_conflict_paths(index))
            tree = index.write_tree(repo)
            new_id = repo.create_commit(None, commit.author, signature, commit.message, tree, [tip.id])
            tip = repo[new_id].peel(pygit2.Commit)
        return RebaseResult(onto=str(onto.id), head=str(tip.id), replayed=len(series))
    finally:
        repo.free()


def set_ref(mirror: Path, ref: str, commit: str) -> None:
    repo = pygit2.Repository(str(mirror))
    try:
        repo.references.create(ref, pygit2.Oid(hex=commit), force=True)
    finally:
        repo.free()
