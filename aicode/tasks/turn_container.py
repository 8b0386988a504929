"""A turn's container: started hardened on the turn's network, and afterwards (off the turn's critical
path) given the agent's own commit and removed. The next turn of a task waits for that clean-up, so
two turns never share a working copy."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import structlog

from aicode.agents.registry import driver_for
from aicode.background import BackgroundTasks
from aicode.containers.confinement import NetworkConfinement
from aicode.containers.network_holders import NetworkHolders
from aicode.containers.policy import ContainerSpec, Mount
from aicode.containers.runtime import ContainerError, ContainerRuntime, ExecResult
from aicode.containers.warm_pool import PoolKey, WarmContainer, WarmPool
from aicode.storage.layout import DataLayout
from aicode.tasks.models import TaskRecord
from aicode.tasks.turn_plan import AGENT_HOME, TurnFailure, TurnPlan, git_sync_command
from aicode.workspaces.models import WorkspaceRecord

__all__ = ["ContainerConfig", "StartedContainer", "TurnContainers"]

log = structlog.get_logger(__name__)

_CLEAN_UP_WAIT_S = 120.0


@dataclass(frozen=True, slots=True)
class ContainerConfig:
    server_id: str  # labels this server's containers, to find the ones it left behind
    default_image: str
    container_user: str  # uid:gid the agent runs as inside its container


@dataclass(frozen=True, slots=True)
class StartedContainer:
    id: str
    holder: str | None  # the network holder whose namespace it shares (None: a network of its own)


class TurnContainers:
    def __init__(self, config: ContainerConfig, runtime: ContainerRuntime, layout: DataLayout,
                 confinement: NetworkConfinement, holders: NetworkHolders, *, warm: int = 0) -> None:
        self._config = config
        self._runtime = runtime
        self._layout = layout
        self._confinement = confinement
        self._holders = holders
        self._removals = BackgroundTasks()
        # Per task, what its last turn still does after it ended (the agent's own commit, removal).
        self._cleanups: dict[UUID, asyncio.Task[None]] = {}
        # First turns' containers made ahead, `warm` per (workspace, agent) recently used (0: none).
        self.pool = WarmPool(self._make_warm, self._remove_warm, self._removals, size=warm)

    async def drain(self) -> None:
        """Remove the warm containers; wait for clean-ups still in flight (at shutdown)."""
        await self.pool.close()
        await self._removals.join()

    async def after_previous_turn(self, task_id: UUID) -> None:
        """Wait (a bounded time) for the task's previous turn to let go of the working copy."""
        previous = self._cleanups.get(task_id)
        if previous is not None and not previous.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(previous), _CLEAN_UP_WAIT_S)

    def pool_key(self, workspace: WorkspaceRecord, agent: str, network: str,
                 confine_to: tuple[str, tuple[int, ...]] | None) -> PoolKey:
        """What a warm container for a first turn in `workspace` with `agent` is made as (one place for it)."""
        limits = workspace.limits
        return PoolKey(workspace_id=workspace.id, agent=agent, image=workspace.image or self._config.default_image,
                       memory_mb=limits.get("memory_mb"), cpus=limits.get("cpus"), pids=limits.get("pids"),
                       network=network, confine_to=confine_to)

    async def claim_warm(self, task: TaskRecord, workspace: WorkspaceRecord, plan: TurnPlan
                         ) -> StartedContainer | None:
        """The container made ahead for this task's first turn, if this node has one that still fits and
        still runs (a Docker engine that restarted meanwhile stopped it)."""
        if task.turns > 0 or task.base_commit is not None:
            return None
        warm = self.pool.claim(task.id, self.pool_key(workspace, plan.driver.name, plan.network, plan.confine_to))
        if warm is None:
            return None
        _, stopped = await self._runtime.container_state(warm.container_id)
        if stopped:
            self._removals.spawn(self._remove_warm(warm), name=f"remove-{task.id}")
            return None
        log.info("task.warm_container", task_id=str(task.id), container=warm.container_id[:12])
        return StartedContainer(warm.container_id, warm.holder)

    async def _make_warm(self, key: PoolKey, task_id: UUID) -> tuple[str, str | None]:
        """A first turn's container for the task that will have `task_id` (its folders, labels and name)."""
        await asyncio.to_thread(self._layout.prepare_task, task_id)
        limits = {"memory_mb": key.memory_mb, "cpus": key.cpus, "pids": key.pids}
        # Named apart from a turn's own container: the task may still be claimed by another node sharing
        # this Docker engine, which then starts that one.
        started = await self._start(task_id, "warm", key.workspace_id, key.image, limits,
                                    driver_for(key.agent).config_dir, key.network, key.confine_to)
        return started.id, started.holder

    async def _remove_warm(self, warm: WarmContainer) -> None:
        await self._remove(StartedContainer(warm.container_id, warm.holder))

    async def start(self, task: TaskRecord, workspace: WorkspaceRecord, plan: TurnPlan) -> StartedContainer:
        """The turn's container, hardened (see `aicode.containers.policy`) and confined to its network."""
        return await self._start(task.id, str(task.turns + 1), workspace.id, workspace.image or self._config.default_image,
                                 workspace.limits, plan.driver.config_dir, plan.network, plan.confine_to)

    async def _start(self, task_id: UUID, turn: str, workspace_id: UUID, image: str, limits: Mapping[str, Any],
                     config_dir: str, network: str, confine_to: tuple[str, tuple[int, ...]] | None
                     ) -> StartedContainer:
        mode, holder = await self._network(network, confine_to)
        kwargs: dict[str, Any] = {k: limits[k] for k in ("memory_mb", "cpus", "pids") if limits.get(k)}
        spec = ContainerSpec(
            image=image,
            name=f"aicode-{task_id.hex[:12]}-{turn}",
            user=self._config.container_user,
            labels={"aicode.server": self._config.server_id, "aicode.workspace": str(workspace_id),
                    "aicode.task": str(task_id)},
            mounts=(Mount(str(self._layout.checkout(task_id)), "/workspace"),
                    Mount(str(self._layout.agent_config(task_id)), config_dir)),
            network=mode,
            home=AGENT_HOME,
            ipv6=confine_to is None,
            **kwargs,
        )
        try:
            container_id = await self._runtime.start(spec)
        except ContainerError as exc:
            if holder is not None:
                self._removals.spawn(self._holders.release(holder), name=f"release-{holder[:12]}")
            raise TurnFailure(str(exc)) from None
        if confine_to is not None and holder is None:
            await self._confinement.confine(container_id, *confine_to)
        return StartedContainer(container_id, holder)

    def discard(self, task_id: UUID, container: StartedContainer) -> None:
        """Remove a container whose turn never ran (in the background)."""
        self._removals.spawn(self._remove(container), name=f"remove-{task_id}")

    def clean_up(self, task_id: UUID, container: StartedContainer, sync: str | None, env: dict[str, str]) -> None:
        """After the turn, in the background: the agent's own commit in its repository (`sync`: its
        message; None when the agent did not exit on its own), then removal."""
        self._cleanups[task_id] = self._removals.spawn(self._clean_up(task_id, container, sync, env),
                                                       name=f"clean-up-{task_id}")

    async def _network(self, network: str, confine_to: tuple[str, tuple[int, ...]] | None) -> tuple[str, str | None]:
        """On the agent network, the namespace of a ready holder; a network of its own otherwise."""
        if confine_to is None:
            return network, None
        try:
            holder = await self._holders.take(network, *confine_to)
        except ContainerError as exc:
            log.warning("task.network_holder_unavailable", error=str(exc))
            return network, None
        return f"container:{holder}", holder

    async def _remove(self, container: StartedContainer) -> None:
        await self._runtime.remove(container.id)
        if container.holder is not None:
            await self._holders.release(container.holder)

    async def _clean_up(self, task_id: UUID, container: StartedContainer, sync: str | None,
                        env: dict[str, str]) -> None:
        try:
            if sync is not None:
                quiet = {k: v for k, v in env.items() if k == "HOME" or k.startswith("GIT_")}
                with contextlib.suppress(ContainerError):
                    async for _ in self._runtime.run(container.id, git_sync_command(sync), quiet, ExecResult()):
                        pass
        finally:
            await self._remove(container)
            if self._cleanups.get(task_id) is asyncio.current_task():
                del self._cleanups[task_id]
