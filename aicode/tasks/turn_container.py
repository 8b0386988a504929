"""A turn's container: started hardened on the turn's network, and afterwards (off the turn's critical
path) given the agent's own commit and removed. The next turn of a task waits for that clean-up, so
two turns never share a working copy."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import structlog

from aicode.background import BackgroundTasks
from aicode.containers.confinement import NetworkConfinement
from aicode.containers.network_holders import NetworkHolders
from aicode.containers.policy import ContainerSpec, Mount
from aicode.containers.runtime import ContainerError, ContainerRuntime, ExecResult
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
                 confinement: NetworkConfinement, holders: NetworkHolders) -> None:
        self._config = config
        self._runtime = runtime
        self._layout = layout
        self._confinement = confinement
        self._holders = holders
        self._removals = BackgroundTasks()
        # Per task, what its last turn still does after it ended (the agent's own commit, removal).
        self._cleanups: dict[UUID, asyncio.Task[None]] = {}

    async def drain(self) -> None:
        """Wait for clean-ups still in flight (at shutdown)."""
        await self._removals.join()

    async def after_previous_turn(self, task_id: UUID) -> None:
        """Wait (a bounded time) for the task's previous turn to let go of the working copy."""
        previous = self._cleanups.get(task_id)
        if previous is not None and not previous.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(previous), _CLEAN_UP_WAIT_S)

    async def start(self, task: TaskRecord, workspace: WorkspaceRecord, plan: TurnPlan) -> StartedContainer:
        """The turn's container, hardened (see `aicode.containers.policy`) and confined to its network."""
        network, holder = await self._network(plan)
        limits = workspace.limits
        kwargs: dict[str, Any] = {k: limits[k] for k in ("memory_mb", "cpus", "pids") if limits.get(k)}
        spec = ContainerSpec(
            image=workspace.image or self._config.default_image,
            name=f"aicode-{task.id.hex[:12]}-{task.turns + 1}",
            user=self._config.container_user,
            labels={"aicode.server": self._config.server_id, "aicode.workspace": str(workspace.id),
                    "aicode.task": str(task.id)},
            mounts=(Mount(str(self._layout.checkout(task.id)), "/workspace"),
                    Mount(str(self._layout.agent_config(task.id)), plan.driver.config_dir)),
            network=network,
            home=AGENT_HOME,
            ipv6=plan.confine_to is None,
            **kwargs,
        )
        try:
            container_id = await self._runtime.start(spec)
        except ContainerError as exc:
            if holder is not None:
                self._removals.spawn(self._holders.release(holder), name=f"release-{holder[:12]}")
            raise TurnFailure(str(exc)) from None
        if plan.confine_to is not None and holder is None:
            await self._confinement.confine(container_id, *plan.confine_to)
        return StartedContainer(container_id, holder)

    def discard(self, task_id: UUID, container: StartedContainer) -> None:
        """Remove a container whose turn never ran (in the background)."""
        self._removals.spawn(self._remove(container), name=f"remove-{task_id}")

    def clean_up(self, task_id: UUID, container: StartedContainer, sync: str | None, env: dict[str, str]) -> None:
        """After the turn, in the background: the agent's own commit in its repository (`sync`: its
        message; None when the agent did not exit on its own), then removal."""
        self._cleanups[task_id] = self._removals.spawn(self._clean_up(task_id, container, sync, env),
                                                       name=f"clean-up-{task_id}")

    async def _network(self, plan: TurnPlan) -> tuple[str, str | None]:
        """On the agent network, the namespace of a ready holder; a network of its own otherwise."""
        if plan.confine_to is None:
            return plan.network, None
        try:
            holder = await self._holders.take(plan.network, *plan.confine_to)
        except ContainerError as exc:
            log.warning("task.network_holder_unavailable", error=str(exc))
            return plan.network, None
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
