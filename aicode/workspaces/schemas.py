"""Request and response shapes of the workspace endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec

__all__ = ["Limits", "Workspace", "WorkspaceCreate", "WorkspaceUpdate"]

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
        description="'none', 'bridge' (egress allowed), 'host' (admins only) or the name of a Docker network",
    ),
]
RepoUrl = Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
RepoToken = Annotated[str, msgspec.Meta(min_length=1, max_length=4000)]


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


class WorkspaceUpdate(msgspec.Struct, forbid_unknown_fields=True):
    name: WorkspaceName | None = None
    repo_token: RepoToken | None = None
    default_branch: BranchName | None = None
    image: ImageName | None = None
    limits: Limits | None = None
    network: Network | None = None


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
