"""Which warm container a task submitted now can have: its (workspace, agent) key, the reservation made at
submit time (the task takes the id its container was made for), and the first one made at start-up."""

from __future__ import annotations

from uuid import UUID

import structlog

from aicode.containers.warm_pool import PoolKey
from aicode.gateway.runtime import GatewayUnavailable
from aicode.tasks.repo import TaskRepo
from aicode.tasks.turn_container import TurnContainers
from aicode.tasks.turn_plan import TurnFailure, TurnPlanner
from aicode.workspaces.models import WorkspaceRecord
from aicode.workspaces.repo import WorkspaceRepo

__all__ = ["WarmStart"]

log = structlog.get_logger(__name__)


class WarmStart:
    def __init__(self, planner: TurnPlanner, containers: TurnContainers, tasks: TaskRepo,
                 workspaces: WorkspaceRepo) -> None:
        self._planner = planner
        self._containers = containers
        self._tasks = tasks
        self._workspaces = workspaces

    async def reserve(self, workspace: WorkspaceRecord, agent: str) -> UUID | None:
        """The id of a ready container for a first turn in `workspace` with `agent`, for the task about to be
        stored; None when there is none (the pool then makes one for the next task)."""
        if self._containers.pool.size <= 0:
            return None
        key = await self._key(workspace, agent)
        return None if key is None else self._containers.pool.reserve(key)

    async def warm_latest(self) -> None:
        """At start-up: a container for the workspace and agent of the latest task, ready for the next one."""
        if self._containers.pool.size <= 0:
            return
        latest = await self._tasks.latest_workspace_and_agent()
        workspace = await self._workspaces.get(latest[0]) if latest is not None else None
        if latest is None or workspace is None:
            return
        key = await self._key(workspace, latest[1])
        if key is not None:
            self._containers.pool.keep_warm(key)

    async def _key(self, workspace: WorkspaceRecord, agent: str) -> PoolKey | None:
        try:
            policy, network = self._planner.network(workspace)
            confine_to = await self._planner.confinement(policy)
        except (TurnFailure, GatewayUnavailable) as exc:
            log.info("warm_start.unavailable", workspace_id=str(workspace.id), reason=str(exc))
            return None
        return self._containers.pool_key(workspace, agent, network, confine_to)
