"""Warm start: a task's container made before the task exists, so its first turn does not wait for one.

A warm container is made exactly as a first turn's would be, for a task id chosen in advance: the same
image, user, limits, network and confinement, the same hardening, the task's own folders mounted and
the task's own labels and name. Submitting a task to that workspace (with that agent) takes the id, so
the turn finds its container already running; another is made in its place. No agent has run in a
warm container before its task's turn, and each is made for one task id only.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import structlog

from aicode.background import BackgroundTasks
from aicode.containers.runtime import ContainerError

__all__ = ["PoolKey", "WarmContainer", "WarmPool"]

log = structlog.get_logger(__name__)

# How many (workspace, agent) combinations are kept warm at once: the most recently used.
_KEYS_KEPT = 4
# A taken id whose task was claimed by another node (or never stored) gives its container back after this.
_RESERVED_FOR_S = 600.0
_REFILL_AFTER_S = 2.0


@dataclass(frozen=True, slots=True)
class PoolKey:
    """Everything fixed when a container is made: it serves a first turn only if all of it still holds."""

    workspace_id: UUID
    agent: str
    image: str
    memory_mb: int | None
    cpus: float | None
    pids: int | None
    network: str  # the Docker network (the agent network, "none" or an open network)
    confine_to: tuple[str, tuple[int, ...]] | None  # the gateway a confined container may reach


@dataclass(frozen=True, slots=True)
class WarmContainer:
    task_id: UUID
    key: PoolKey
    container_id: str
    holder: str | None  # the network holder whose namespace it shares
    made_at: float = field(default_factory=time.monotonic)


# Makes the container for `task_id` (the id its task will have) as `key` says: (container id, holder).
Maker = Callable[[PoolKey, UUID], Awaitable[tuple[str, str | None]]]
Remover = Callable[[WarmContainer], Coroutine[Any, Any, None]]


class WarmPool:
    def __init__(self, make: Maker, remove: Remover, background: BackgroundTasks, *, size: int) -> None:
        self._make = make
        self._remove = remove
        self._background = background
        self._size = size
        self._ready: dict[PoolKey, list[WarmContainer]] = {}
        self._reserved: dict[UUID, WarmContainer] = {}
        self._filling: dict[PoolKey, int] = {}
        self._recent: list[PoolKey] = []  # the keys kept warm, most recently used last
        self._closed = False

    @property
    def size(self) -> int:
        return self._size

    def ready(self, key: PoolKey) -> int:
        return len(self._ready.get(key, []))

    def keep_warm(self, key: PoolKey, *, after_s: float = 0.0) -> None:
        """Make containers for `key` in the background until `size` are ready (no-op when the pool is off),
        starting in `after_s` seconds."""
        if self._size <= 0 or self._closed:
            return
        if key in self._recent:
            self._recent.remove(key)
        self._recent.append(key)
        if len(self._recent) > _KEYS_KEPT:
            # Idle containers for a workspace nobody has used lately are not worth their memory.
            for container in self._ready.pop(self._recent.pop(0), []):
                self._spawn(self._remove(container), "warm-container-remove")
        missing = self._size - len(self._ready.get(key, [])) - self._filling.get(key, 0)
        for _ in range(max(0, missing)):
            self._filling[key] = self._filling.get(key, 0) + 1
            self._spawn(self._fill(key, after_s), "warm-container")

    def reserve(self, key: PoolKey) -> UUID | None:
        """The task id of a ready container for `key`, now set aside for the task about to be stored with it;
        None when none is ready. Either way the pool makes one for the next task."""
        self._expire()
        ready = self._ready.get(key)
        warm = ready.pop(0) if ready else None
        if warm is not None:
            self._reserved[warm.task_id] = warm
        # The next one is made once this task's agent has started: on a small machine, making a container
        # at the same moment slows the agent's start-up, which is what the warm container is there to spare.
        self.keep_warm(key, after_s=_REFILL_AFTER_S if warm is not None else 0.0)
        return warm.task_id if warm is not None else None

    def claim(self, task_id: UUID, key: PoolKey) -> WarmContainer | None:
        """The container made for this task's first turn, if this node has it and it still fits `key` (the
        workspace's image, limits or network may have changed since)."""
        warm = self._reserved.pop(task_id, None)
        if warm is not None and warm.key != key:
            self._spawn(self._remove(warm), "warm-container-remove")
            return None
        return warm

    async def close(self) -> None:
        """Remove every warm container (at shutdown)."""
        self._closed = True
        waiting = [container for containers in self._ready.values() for container in containers]
        waiting += self._reserved.values()
        self._ready.clear()
        self._reserved.clear()
        for container in waiting:
            await self._remove(container)

    def _expire(self) -> None:
        now = time.monotonic()
        for task_id, warm in list(self._reserved.items()):
            if now - warm.made_at > _RESERVED_FOR_S:
                del self._reserved[task_id]
                self._spawn(self._remove(warm), "warm-container-remove")

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        try:
            self._background.spawn(work, name=name)
        except RuntimeError:  # shutting down: the work is not needed any more
            work.close()

    async def _fill(self, key: PoolKey, after_s: float) -> None:
        task_id = uuid.uuid4()
        try:
            if after_s:
                await asyncio.sleep(after_s)
            container_id, holder = await self._make(key, task_id)
        except (ContainerError, OSError) as exc:
            log.warning("warm_pool.not_made", image=key.image, error=str(exc))
            return
        finally:
            self._filling[key] -= 1
        warm = WarmContainer(task_id, key, container_id, holder)
        if self._closed:
            with contextlib.suppress(ContainerError):
                await self._remove(warm)
            return
        self._ready.setdefault(key, []).append(warm)
        log.info("warm_pool.ready", workspace_id=str(key.workspace_id), agent=key.agent, image=key.image,
                 ready=len(self._ready[key]))
