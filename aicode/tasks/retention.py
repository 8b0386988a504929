"""Retention: ended tasks' working copies (on this node) and central state removed after an age, their
rows, events and branches kept; and the data disk's free space, which new tasks need a floor of."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import structlog

from aicode.errors import InsufficientStorageError
from aicode.storage.layout import DataLayout
from aicode.tasks.state_repo import TaskStateRepo

__all__ = ["CollectReport", "DiskFloor", "Retention"]

log = structlog.get_logger(__name__)

_BATCH = 500


@dataclass(frozen=True, slots=True)
class CollectReport:
    working_copies: int  # tasks whose folder on this node was removed
    working_copy_bytes: int
    central_states: int  # tasks whose state in the database was removed
    central_bytes: int

    @property
    def freed_bytes(self) -> int:
        return self.working_copy_bytes + self.central_bytes


def _size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return total


def _task_ids(tasks_dir: Path) -> list[UUID]:
    found = []
    for entry in os.scandir(tasks_dir):
        try:
            found.append(uuid.UUID(entry.name))
        except ValueError:
            continue
    return found


class Retention:
    def __init__(self, layout: DataLayout, repo: TaskStateRepo) -> None:
        self._layout = layout
        self._repo = repo

    async def collect(self, older_than_days: float) -> CollectReport:
        """Remove what tasks that ended more than `older_than_days` ago keep on this node and centrally."""
        cutoff = datetime.now(UTC) - timedelta(days=older_than_days)
        local = await asyncio.to_thread(_task_ids, self._layout.tasks_dir)
        removed, removed_bytes = 0, 0
        for start in range(0, len(local), _BATCH):
            for task_id in await self._repo.ended_before(cutoff, local[start:start + _BATCH]):
                folder = self._layout.task_dir(task_id)
                removed_bytes += await asyncio.to_thread(_size, folder)
                await asyncio.to_thread(shutil.rmtree, folder, True)
                removed += 1
        central, central_bytes = await self._repo.forget_ended_before(cutoff)
        report = CollectReport(removed, removed_bytes, central, central_bytes)
        if removed or central:
            log.info("retention.collected", working_copies=removed, central_states=central,
                     freed_bytes=report.freed_bytes, older_than_days=older_than_days)
        return report


class DiskFloor:
    """The data disk's free space against the floor new tasks need (AICODE_MIN_FREE_DISK_MB)."""

    def __init__(self, data_dir: Path, floor_mb: int) -> None:
        self._data_dir = data_dir
        self.floor_bytes = floor_mb * 1024 * 1024

    async def free_bytes(self) -> int:
        return (await asyncio.to_thread(shutil.disk_usage, self._data_dir)).free

    async def warning(self) -> str | None:
        """A warning for /readyz when the disk is under twice the floor."""
        free = await self.free_bytes()
        if free >= 2 * self.floor_bytes:
            return None
        return (f"the data disk has {free // (1024 * 1024)} MB free; below {self.floor_bytes // (1024 * 1024)} MB "
                "(AICODE_MIN_FREE_DISK_MB) new tasks are refused: free space or lower AICODE_RETENTION_DAYS")

    async def check(self) -> None:
        """InsufficientStorageError below the floor: refuse a task before it fails half-way."""
        free = await self.free_bytes()
        if free < self.floor_bytes:
            raise InsufficientStorageError(
                f"the server's data disk has only {free // (1024 * 1024)} MB free, under the "
                f"{self.floor_bytes // (1024 * 1024)} MB new tasks need (AICODE_MIN_FREE_DISK_MB): an operator frees "
                "space (aicode gc) and the task can be sent again", retry_after_s=300)
