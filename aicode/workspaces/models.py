"""The workspace as the service sees it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

__all__ = ["WorkspaceRecord", "WorkspaceStatus"]


class WorkspaceStatus:
    CLONING = "cloning"
    READY = "ready"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class WorkspaceRecord:
    id: UUID
    owner_id: UUID
    name: str
    repo_url: str
    repo_token_enc: bytes | None = field(repr=False)
    default_branch: str | None
    image: str | None
    limits: dict[str, Any]
    network: str | None
    status: str
    error: str | None
    last_synced_at: datetime | None
    created_at: datetime
    updated_at: datetime
    egress_allow: list[str] = field(default_factory=list)
    monthly_budget_usd: float | None = None
