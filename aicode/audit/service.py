"""Records what people do: `AuditLog.record` from the services, read back by admins.

The address is the request's client address, set by the request middleware for everything the
request runs (`CLIENT_ADDRESS`), so services need not carry it. A record that cannot be written is
logged and does not fail what it records.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import structlog

from aicode.audit.repo import AuditEvent, AuditRepo
from aicode.auth.models import UserRecord
from aicode.request_log import CLIENT_ADDRESS

__all__ = ["AuditLog"]

log = structlog.get_logger(__name__)


class AuditLog:
    def __init__(self, repo: AuditRepo) -> None:
        self._repo = repo

    async def record(self, actor: UserRecord | str | None, action: str, target: tuple[str, Any] | None = None,
                     **detail: Any) -> None:
        """`actor` did `action` (e.g. "task.submit") to `target` ((type, id)); `detail` must hold no secret."""
        actor_id = actor.id if isinstance(actor, UserRecord) else None
        name = actor.username if isinstance(actor, UserRecord) else (actor or "anonymous")
        try:
            await self._repo.insert(
                actor_id=actor_id, actor=name, action=action, target_type=target[0] if target else None,
                target_id=str(target[1]) if target else None,
                detail={k: str(v) if isinstance(v, UUID) else v for k, v in detail.items()},
                address=CLIENT_ADDRESS.get(),
            )
        except Exception as exc:  # the trail must not break what it records; the log keeps the failure
            log.error("audit.write_failed", action=action, actor=name, error=repr(exc)[:300])

    async def events(self, *, actor: str | None, action: str | None, since: datetime | None,
                     before_id: int | None, limit: int) -> list[AuditEvent]:
        return await self._repo.list(actor=actor, action=action, since=since, before_id=before_id, limit=limit)
