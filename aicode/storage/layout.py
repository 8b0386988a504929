"""Where everything lives in the data dir, who owns it, and with which modes: the one place for both.

    <data>/                      0700 root (the server)   secret_key, postgres/
    <data>/git/                  0700 git uid             the server's git store; never mounted
    <data>/git/mirrors/<ws>.git                           one bare mirror per workspace; task
                                                          branches are refs/aicode/tasks/<id> in it
    <data>/git/mirrors/<ws>.synced                        the workspace sync that mirror matches
    <data>/git/tmp/                                       working copies being made
    <data>/tasks/<id>/           0700 root                what the server keeps of a task
    <data>/tasks/<id>/checkout/  0700 agent uid           mounted at /workspace
    <data>/tasks/<id>/agent/     0700 agent uid           the agent's config dir (sessions)

Only the two agent folders are ever mounted into a container, and only they belong to the agent.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from aicode.storage.identity import HostIdentities

__all__ = ["DataLayout", "task_ref"]


def task_ref(task_id: UUID) -> str:
    """The ref in the workspace mirror that holds a task's branch (`aicode/<id>` to users)."""
    return f"refs/aicode/tasks/{task_id}"


def _own(path: Path, uid: int, gid: int) -> None:
    if os.geteuid() == 0:
        os.lchown(path, uid, gid)


def _make_dir(path: Path, uid: int, gid: int) -> Path:
    """Create `path` (0700) if missing and make sure it has this owner and mode."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.is_symlink() or not path.is_dir():
        raise RuntimeError(f"{path} must be a plain directory")
    os.chmod(path, 0o700)
    _own(path, uid, gid)
    return path


@dataclass(frozen=True, slots=True)
class DataLayout:
    """Paths in the data dir, and the folders' owners and modes."""

    data_dir: Path
    ids: HostIdentities

    @property
    def git_root(self) -> Path:
        return self.data_dir / "git"

    @property
    def mirrors_dir(self) -> Path:
        return self.git_root / "mirrors"

    @property
    def git_tmp(self) -> Path:
        return self.git_root / "tmp"

    @property
    def tasks_dir(self) -> Path:
        return self.data_dir / "tasks"

    def mirror(self, workspace_id: UUID) -> Path:
        return self.mirrors_dir / f"{workspace_id}.git"

    def mirror_synced(self, workspace_id: UUID) -> Path:
        """When the workspace was last synced (on any node) as far as this node's mirror knows."""
        return self.mirrors_dir / f"{workspace_id}.synced"

    def task_dir(self, task_id: UUID) -> Path:
        return self.tasks_dir / str(task_id)

    def checkout(self, task_id: UUID) -> Path:
        return self.task_dir(task_id) / "checkout"

    def agent_config(self, task_id: UUID) -> Path:
        return self.task_dir(task_id) / "agent"

    def snapshot_cache(self, task_id: UUID) -> Path:
        """What the last snapshot of the working copy saw (for skipping unchanged files)."""
        return self.task_dir(task_id) / "snapshot.json"

    def setup_done(self, task_id: UUID) -> Path:
        """Marks a working copy the workspace's setup command has run in (only the server writes here)."""
        return self.task_dir(task_id) / "setup.done"

    def prepare(self) -> None:
        """Create the top folders with their owners and modes (at start-up; idempotent)."""
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.data_dir, 0o700)
        git = self.ids
        for folder in (self.git_root, self.mirrors_dir, self.git_tmp):
            _make_dir(folder, git.git_uid, git.git_gid)
        _make_dir(self.tasks_dir, os.geteuid(), os.getegid())

    def prepare_task(self, task_id: UUID) -> None:
        """The task's folder (the server's) and, inside, the two folders that belong to the agent."""
        _make_dir(self.task_dir(task_id), os.geteuid(), os.getegid())
        for folder in (self.checkout(task_id), self.agent_config(task_id)):
            _make_dir(folder, self.ids.agent_uid, self.ids.agent_gid)
