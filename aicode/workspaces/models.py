"""The workspace as the service sees it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

__all__ = ["WorkspaceChange", "WorkspaceRecord", "WorkspaceStatus"]


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
    forge: dict[str, Any] | None = None  # see aicode.forges.models.ForgeSettings
    forge_token_enc: bytes | None = field(default=None, repr=False)
    auto_pr: str = "off"
    setup: str | None = None
    setup_timeout_s: int | None = None
    webhook_secret_enc: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class WorkspaceChange:
    """The settings a change sets; None leaves a setting as it is."""

    name: str | None = None
    repo_token_enc: bytes | None = field(default=None, repr=False)
    default_branch: str | None = None
    image: str | None = None
    limits: dict[str, Any] | None = None
    network: str | None = None
    egress_allow: tuple[str, ...] | None = None
    forge: dict[str, Any] | None = None
    forge_token_enc: bytes | None = field(default=None, repr=False)
    auto_pr: str | None = None
    setup: str | None = None
    setup_timeout_s: int | None = None
    webhook_secret_enc: bytes | None = field(default=None, repr=False)
    # Settings removed (set to NULL), by column name: forge, forge_token_enc, setup, setup_timeout_s.
    cleared: tuple[str, ...] = ()

    def names(self) -> list[str]:
        """The settings it sets or removes, by name (never a value: some are sealed secrets)."""
        return [name for name in self.__slots__ if name != "cleared" and getattr(self, name) is not None] + list(
            self.cleared)
