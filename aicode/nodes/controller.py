"""`GET /api/admin/nodes`: the server processes sharing this database, for admins."""

from __future__ import annotations

from datetime import datetime

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency

from aicode.auth.guards import requires_admin
from aicode.nodes.repo import NodeRepo

__all__ = ["NodeController"]


class NodeOut(msgspec.Struct):
    name: str
    alive: bool
    version: str
    running: int
    capacity: int
    draining: bool
    started_at: datetime
    last_heartbeat_at: datetime
    lease_until: datetime


class NodeController(Controller):
    path = "/api/admin/nodes"
    tags = ["admin"]
    guards = [requires_admin]

    @get("/")
    async def nodes(self, node_repo: NamedDependency[NodeRepo]) -> list[NodeOut]:
        """Every node that has joined: alive while its lease (renewed by heartbeat) lasts, with its
        running turns against its capacity (AICODE_MAX_CONCURRENT_TASKS) and its version."""
        return [NodeOut(name=n.name, alive=n.alive, version=n.version, running=n.running if n.alive else 0,
                        capacity=n.capacity, draining=n.draining, started_at=n.started_at,
                        last_heartbeat_at=n.heartbeat_at, lease_until=n.lease_until)
                for n in await node_repo.list()]
