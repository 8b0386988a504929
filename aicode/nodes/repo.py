"""SQL for the nodes table: joining, renewing the lease, leaving, listing."""

from __future__ import annotations

from typing import cast

from aicode.db.pool import Database
from aicode.nodes.models import NodeRecord

__all__ = ["NodeRepo"]


class NodeRepo:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def join(self, name: str, version: str, capacity: int, lease_s: float, fingerprint: str) -> int:
        """Record this process as node `name` with a fresh lease; returns its incarnation (one more
        than the last process of that name had, so that process's heartbeats fail from now on)."""
        return cast(int, await self._db.pool.fetchval(
            """INSERT INTO nodes (name, version, capacity, lease_until, secret_fingerprint)
               VALUES ($1, $2, $3, now() + make_interval(secs => $4), $5)
               ON CONFLICT (name) DO UPDATE SET
                   version = EXCLUDED.version, capacity = EXCLUDED.capacity, running = 0, draining = false,
                   started_at = now(), heartbeat_at = now(), lease_until = EXCLUDED.lease_until,
                   secret_fingerprint = EXCLUDED.secret_fingerprint, incarnation = nodes.incarnation + 1
               RETURNING incarnation""",
            name, version, capacity, lease_s, fingerprint,
        ))

    async def alive_with_another_key(self, name: str, fingerprint: str) -> list[str]:
        """Live nodes other than `name` whose secret key is not the one with `fingerprint`."""
        rows = await self._db.pool.fetch(
            """SELECT name FROM nodes
               WHERE name <> $1 AND lease_until > now() AND secret_fingerprint <> $2 ORDER BY name""",
            name, fingerprint,
        )
        return [row["name"] for row in rows]

    async def renew(self, name: str, incarnation: int, *, running: int, draining: bool, lease_s: float) -> bool:
        """Extend the lease; False when another process has since joined under this name."""
        renewed = await self._db.pool.fetchval(
            """UPDATE nodes SET heartbeat_at = now(), lease_until = now() + make_interval(secs => $3),
                   running = $4, draining = $5
               WHERE name = $1 AND incarnation = $2 RETURNING true""",
            name, incarnation, lease_s, running, draining,
        )
        return bool(renewed)

    async def leave(self, name: str, incarnation: int) -> None:
        """A graceful stop: the lease ends now, so the node shows as down at once."""
        await self._db.pool.execute(
            """UPDATE nodes SET lease_until = now(), running = 0, draining = true
               WHERE name = $1 AND incarnation = $2""",
            name, incarnation,
        )

    async def list(self) -> list[NodeRecord]:
        rows = await self._db.pool.fetch(
            """SELECT name, version, capacity, running, draining, started_at, heartbeat_at, lease_until,
                      lease_until > now() AS alive
               FROM nodes ORDER BY name"""
        )
        return [NodeRecord(**dict(row)) for row in rows]
