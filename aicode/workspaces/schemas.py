"""Request and response shapes of the workspace endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

__all__ = ["ForgeIn", "ForgeOut", "Limits", "Webhook", "Workspace", "WorkspaceCreate", "WorkspaceUpdate"]

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
WorkspaceName = Annotated[
    str, msgspec.Meta(pattern=NAME_PATTERN, description="1-64 letters, digits, '.', '_' or '-'")
]
BranchName = Annotated[
    str, msgspec.Meta(pattern=r"^(?!-)(?!.*\.\.)(?!.*//)[A-Za-z0-9._/-]{1,200}(?<![./])$", description="a git branch name")
]
ImageName = Annotated[
    str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9._/:@-]{0,254}$", description="a Docker image reference")
]
Network = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$",
        description="'gateway' (default: only the model gateway is reachable), 'allowlist' (plus HTTPS to the "
        "hosts in egress_allow), 'none' (no network), or 'open' / a network listed in AICODE_OPEN_NETWORKS "
        "(admins only)",
    ),
]
EgressHost = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
        r"(:[0-9]{1,5})?$",
        max_length=260,
        description="a host the agent may reach over HTTPS: 'registry.example.com', 'example.com:8443' or "
        "'*.example.com' (port 443 unless given)",
    ),
]
EgressAllow = Annotated[list[EgressHost], msgspec.Meta(max_length=100)]
Budget = Annotated[float, msgspec.Meta(ge=0, le=1_000_000)]
RepoUrl = Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
RepoToken = Annotated[str, msgspec.Meta(min_length=1, max_length=4000)]


ForgeRepo = Annotated[
    str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+$", max_length=500,
                      description="owner/name on GitHub; the project path (group/subgroup/name) on GitLab")
]
Trigger = Annotated[
    str, msgspec.Meta(pattern=r"^[@/!][A-Za-z0-9][A-Za-z0-9_.-]{0,38}$",
                      description="the mention that starts a task from a forge comment (default @aicode)")
]
SetupCommand = Annotated[str, msgspec.Meta(max_length=4000, description="a shell command run in the container "
                                           "before the agent's first turn (e.g. `npm ci`); empty removes it")]
SetupTimeout = Annotated[int, msgspec.Meta(ge=1, le=3600)]
AutoPr = Literal["off", "draft", "ready"]


class ForgeIn(msgspec.Struct, forbid_unknown_fields=True):
    """Where the workspace's pull requests go. `token` defaults to the repository token."""

    kind: Literal["github", "gitlab"]
    repo: ForgeRepo
    api_url: RepoUrl | None = None  # default: the public API of the kind (set it for GHE or self-hosted GitLab)
    token: RepoToken | None = None
    trigger: Trigger | None = None


class ForgeOut(msgspec.Struct):
    kind: str
    repo: str
    api_url: str
    trigger: str
    has_token: bool  # its own token; otherwise the repository token is used


class Webhook(msgspec.Struct):
    """Where the forge sends comments (POST /api/workspaces/{id}/webhook sets up the secret)."""

    path: str
    configured: bool


class Limits(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Per-container resource limits; unset ones fall back to the server's defaults."""

    cpus: Annotated[float, msgspec.Meta(gt=0, le=64)] | None = None
    memory_mb: Annotated[int, msgspec.Meta(ge=64, le=262144)] | None = None
    pids: Annotated[int, msgspec.Meta(ge=16, le=65536)] | None = None


class WorkspaceCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: WorkspaceName
    repo_url: RepoUrl
    repo_token: RepoToken | None = None
    default_branch: BranchName | None = None
    image: ImageName | None = None
    limits: Limits | None = None
    network: Network | None = None
    egress_allow: EgressAllow | None = None
    forge: ForgeIn | None = None
    auto_pr: AutoPr | None = None
    setup: SetupCommand | None = None
    setup_timeout_s: SetupTimeout | None = None


class WorkspaceUpdate(msgspec.Struct, forbid_unknown_fields=True):
    name: WorkspaceName | None = None
    repo_token: RepoToken | None = None
    default_branch: BranchName | None = None
    image: ImageName | None = None
    limits: Limits | None = None
    network: Network | None = None
    egress_allow: EgressAllow | None = None
    # Admins only; null removes the budget.
    monthly_budget_usd: Budget | None | msgspec.UnsetType = msgspec.UNSET
    # null removes the forge (and its token).
    forge: ForgeIn | None | msgspec.UnsetType = msgspec.UNSET
    auto_pr: AutoPr | None = None
    # null or "" removes the setup command.
    setup: SetupCommand | None | msgspec.UnsetType = msgspec.UNSET
    setup_timeout_s: SetupTimeout | None = None


class Workspace(msgspec.Struct):
    id: UUID
    name: str
    owner_id: UUID
    repo_url: str
    has_repo_token: bool
    default_branch: str | None
    image: str | None
    limits: Limits
    network: str | None
    status: str
    error: str | None
    last_synced_at: datetime | None
    created_at: datetime
    updated_at: datetime
    egress_allow: list[str] = []
    monthly_budget_usd: float | None = None
    # Your role in it: owner, editor or viewer (null for an admin who is not a member).
    role: str | None = None
    forge: ForgeOut | None = None
    auto_pr: str = "off"
    setup: str | None = None
    setup_timeout_s: int | None = None
    webhook: Webhook | None = None
