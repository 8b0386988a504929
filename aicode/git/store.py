"""The server's git store: every git operation the services need, each run where it belongs.

libgit2 work runs in the git worker (`GitWorker`, not root). Reading what an agent wrote runs in
a thread of this process with the agent's filesystem identity (`aicode.git.worktree`). Fetching
from a local-path source runs here as the server, because the source may be readable by the
server only; such sources are checked first (`resolve_local_git_dir`) and what the fetch wrote is
then given to the git uid.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from uuid import UUID

import pygit2

from aicode.git import checkout as branches
from aicode.git import mirror as mirrors
from aicode.git import push, rebase, transfer
from aicode.git.checkout import CommitInfo, FileChange
from aicode.git.mirror import MirrorState
from aicode.git.patches import format_patch_series
from aicode.git.push import PushResult
from aicode.git.rebase import RebaseResult
from aicode.git.worker import GitWorker, StorePath
from aicode.git.worktree import TreeEntry, hand_over_checkout, load_cache, save_cache, scan_worktree
from aicode.storage.layout import DataLayout, task_ref

_REMOVE_ATTEMPTS = 20

__all__ = ["GitStore", "Snapshot"]


@dataclass(slots=True)
class Snapshot:
    """A turn's commit (None when nothing changed) and the files the snapshot left out, with why."""

    commit: CommitInfo | None
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _give(path: Path, uid: int, gid: int) -> None:
    """chown -R without following symlinks (a tree only the server has written)."""
    if os.geteuid() != 0:
        return
    os.lchown(path, uid, gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), uid, gid)


def _local_sync(action: Callable[..., MirrorState], url: str, dest: Path) -> MirrorState:
    # A local source belongs to whoever made it; libgit2 would refuse one owned by another user.
    pygit2.option(pygit2.enums.Option.SET_OWNER_VALIDATION, 0)
    return action(url, dest)


def _read_synced(mirror: Path, marker: Path) -> datetime | None:
    if not mirror.is_dir():
        return None
    try:
        return datetime.fromisoformat(marker.read_text().strip())
    except (OSError, ValueError):
        return None


class GitStore:
    def __init__(self, layout: DataLayout, worker: GitWorker, fetcher: GitWorker) -> None:
        self._layout = layout
        self._worker = worker
        # Network fetches get workers of their own: a slow or silent remote never delays a turn's commit.
        self._fetcher = fetcher

    @property
    def worker(self) -> GitWorker:
        return self._worker

    def _mirror(self, workspace_id: UUID) -> StorePath:
        return StorePath(str(self._layout.mirror(workspace_id).relative_to(self._layout.git_root)))

    # -- mirrors ---------------------------------------------------------------------------------

    async def sync_mirror(self, workspace_id: UUID, url: str, credential: tuple[str, str] | None, *,
                          local: bool) -> MirrorState:
        """Clone the workspace's mirror, or fetch into it; raises MirrorError with a message for people."""
        exists = self._layout.mirror(workspace_id).exists()
        action = mirrors.fetch_mirror if exists else mirrors.clone_mirror
        if not local:
            return await self._fetcher.run(action, url, self._mirror(workspace_id), credential)
        path = self._layout.mirror(workspace_id)
        state = await asyncio.to_thread(_local_sync, action, url, path)
        ids = self._layout.ids
        await asyncio.to_thread(_give, path, ids.git_uid, ids.git_gid)
        return state

    async def remove_mirror(self, workspace_id: UUID) -> None:
        await asyncio.to_thread(mirrors.remove_mirror, self._layout.mirror(workspace_id))
        await asyncio.to_thread(self._layout.mirror_synced(workspace_id).unlink, True)

    async def synced_at(self, workspace_id: UUID) -> datetime | None:
        """The workspace sync this node's mirror matches; None without a mirror here or a record of it."""
        return await asyncio.to_thread(_read_synced, self._layout.mirror(workspace_id),
                                       self._layout.mirror_synced(workspace_id))

    async def record_synced(self, workspace_id: UUID, at: datetime) -> None:
        await asyncio.to_thread(self._layout.mirror_synced(workspace_id).write_text, at.isoformat())

    async def branch_exists(self, workspace_id: UUID, branch: str) -> bool:
        return await self._worker.run(branches.branch_exists, self._mirror(workspace_id), branch)

    # -- a task's working copy and branch ------------------------------------------------------------

    async def make_checkout(self, workspace_id: UUID, task_id: UUID, base_branch: str, branch: str) -> str:
        """Start the task's branch at `base_branch` and fill its (empty) checkout; returns the base commit."""
        made = self._layout.git_tmp / f"{task_id}-{os.urandom(4).hex()}"
        try:
            base, entries = await self._worker.run(branches.make_working_copy, self._mirror(workspace_id),
                                                   self._relative(made), base_branch, branch, task_ref(task_id))
            await self._hand_over(task_id, made, entries)
        finally:
            await asyncio.to_thread(shutil.rmtree, made, True)
        return base

    async def checkout_task_head(self, workspace_id: UUID, task_id: UUID, branch: str, head: str) -> None:
        """The task's working copy made afresh at `head` (a follow-up on a node that did not run the task's
        last turn): whatever the checkout held is replaced."""
        made = self._layout.git_tmp / f"{task_id}-{os.urandom(4).hex()}"
        try:
            entries = await self._worker.run(branches.working_copy_at, self._mirror(workspace_id),
                                             self._relative(made), branch, task_ref(task_id), head)
            await self._hand_over(task_id, made, entries)
        finally:
            await asyncio.to_thread(shutil.rmtree, made, True)

    def _relative(self, path: Path) -> StorePath:
        return StorePath(str(path.relative_to(self._layout.git_root)))

    async def _hand_over(self, task_id: UUID, made: Path, entries: list[TreeEntry]) -> None:
        """The working copy the worker made in `made` becomes the task's checkout, with its stat cache."""
        cache = await asyncio.to_thread(hand_over_checkout, made, self._layout.checkout(task_id),
                                        self._layout.ids, entries)
        await asyncio.to_thread(save_cache, self._layout.snapshot_cache(task_id), cache)

    # -- a task's commits, moved between nodes ------------------------------------------------------

    async def export_objects(self, workspace_id: UUID, since: str, head: str, limit: int) -> bytes:
        """The objects `head` adds to `since`, packed for the database (TransferError beyond `limit`)."""
        return await self._worker.run(transfer.export_objects, self._mirror(workspace_id), since, head, limit)

    async def import_objects(self, workspace_id: UUID, task_id: UUID, packs: list[bytes], head: str) -> None:
        await self._worker.run(transfer.import_objects, self._mirror(workspace_id), packs, task_ref(task_id), head)

    async def has_task_head(self, workspace_id: UUID, task_id: UUID, head: str) -> bool:
        """Whether this node's store has the task's branch at `head`."""
        if not self._layout.mirror(workspace_id).is_dir():
            return False
        return await self._worker.run(transfer.has_commit, self._mirror(workspace_id), task_ref(task_id), head)

    async def snapshot(self, workspace_id: UUID, task_id: UUID, parent: str, message: str,
                       author: tuple[str, str], committer: tuple[str, str]) -> Snapshot:
        """Commit what the working copy holds now on the task's branch, after `parent`."""
        layout = self._layout
        previous = await asyncio.to_thread(load_cache, layout.snapshot_cache(task_id))
        scan = await asyncio.to_thread(scan_worktree, layout.checkout(task_id),
                                       layout.mirror(workspace_id) / "objects", layout.ids, previous)
        commit, refused = await self._worker.run(branches.commit_entries, self._mirror(workspace_id),
                                                 task_ref(task_id), parent, scan.entries, message, author, committer)
        await asyncio.to_thread(save_cache, layout.snapshot_cache(task_id), scan.cache)
        return Snapshot(commit=commit, skipped=scan.skipped + [(path, "git refuses this name") for path in refused])

    async def remove_task(self, workspace_id: UUID, task_id: UUID) -> None:
        """The task's folder and its branch (when the mirror is still there)."""
        folder = self._layout.task_dir(task_id)
        # The container of the task's last turn may still be finishing its clean-up (the agent's own
        # commit) and write into the folder while it is removed: then the removal is tried again.
        for _ in range(_REMOVE_ATTEMPTS):
            await asyncio.to_thread(shutil.rmtree, folder, True)
            if not folder.exists():
                break
            await asyncio.sleep(0.25)
        if self._layout.mirror(workspace_id).exists():
            await self._worker.run(branches.delete_ref, self._mirror(workspace_id), task_ref(task_id))

    # -- the forge round trip -----------------------------------------------------------------------

    async def push(self, workspace_id: UUID, url: str, credential: tuple[str, str] | None, commit: str,
                   branch: str, expected: str | None, *, allow_http: bool) -> PushResult:
        """Make `branch` on the remote `commit` if it is `expected` there now (PushError otherwise)."""
        return await self._fetcher.run(push.push_commit, self._mirror(workspace_id), url, credential, commit,
                                       branch, expected, allow_http)

    async def rebase(self, workspace_id: UUID, base: str, head: str, onto_branch: str,
                     committer: tuple[str, str]) -> RebaseResult:
        """The task's commits replayed on `onto_branch` (written, no ref moved), or the conflicting paths."""
        return await self._worker.run(rebase.rebase_commits, self._mirror(workspace_id), base, head, onto_branch,
                                      committer)

    async def set_task_head(self, workspace_id: UUID, task_id: UUID, commit: str) -> None:
        await self._worker.run(rebase.set_ref, self._mirror(workspace_id), task_ref(task_id), commit)

    # -- review --------------------------------------------------------------------------------------

    async def diff(self, workspace_id: UUID, base: str, head: str) -> str:
        return await self._worker.run(branches.diff_patch, self._mirror(workspace_id), base, head)

    async def files(self, workspace_id: UUID, base: str, head: str) -> list[FileChange]:
        return await self._worker.run(branches.diff_files, self._mirror(workspace_id), base, head)

    async def patch_series(self, workspace_id: UUID, base: str, head: str, signature: str) -> str:
        return await self._worker.run(_patch_series, self._mirror(workspace_id), base, head, signature)


def _patch_series(mirror: Path, base: str, head: str, signature: str) -> str:
    return format_patch_series(mirror, base, head, signature=signature)
