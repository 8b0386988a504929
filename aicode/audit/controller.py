"""`GET /api/admin/audit`: the audit trail, newest first, for admins."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from aicode.audit.repo import AuditEvent
from aicode.audit.service import AuditLog
from aicode.auth.guards import requires_admin

__all__ = ["AuditController", "audit_out"]


class AuditEntry(msgspec.Struct):
    id: int
    at: datetime
    actor: str
    actor_id: UUID | None
    action: str
    target_type: str | None
    target_id: str | None
    detail: dict[str, Any]
    address: str | None


def audit_out(event: AuditEvent) -> AuditEntry:
    return AuditEntry(id=event.id, at=event.at, actor=event.actor, actor_id=event.actor_id, action=event.action,
                      target_type=event.target_type, target_id=event.target_id, detail=event.detail,
                      address=event.address)


class AuditController(Controller):
    path = "/api/admin/audit"
    tags = ["admin"]
    guards = [requires_admin]

    @get("/")
    async def audit(
        self, audit_log: NamedDependency[AuditLog],
        actor: Annotated[str | None, QueryParameter(max_length=64, description="a username")] = None,
        action: Annotated[str | None, QueryParameter(
            max_length=64, description='an action ("task.submit"), or a family ending in "." ("task.")')] = None,
        since: Annotated[datetime | None, QueryParameter(description="only events at or after this time")] = None,
        before: Annotated[int | None, QueryParameter(ge=1, le=2**63 - 1,
                                                     description="only events with a smaller id (paging)")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 200,
    ) -> list[AuditEntry]:
        """Who did what, when, from which address: sign-ins (ok and failed), tokens, users, memberships,
        workspaces, credentials and tasks."""
        events = await audit_log.events(actor=actor, action=action, since=since, before_id=before, limit=limit)
        return [audit_out(event) for event in events]
