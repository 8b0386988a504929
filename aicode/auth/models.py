"""What the auth module knows about a person and about how a request proved who it is."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

__all__ = ["ApiTokenAuth", "UserRecord"]


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: UUID
    username: str
    password_hash: str
    is_admin: bool
    disabled: bool
    created_at: datetime
    monthly_budget_usd: float | None = None  # model spend allowed per calendar month (None: no cap)
    session_version: int = 0  # JWTs carry it; a password reset or disable bumps it and ends them all
    git_name: str | None = None  # the author of their turns' commits (None: the username)
    git_email: str | None = None


@dataclass(frozen=True, slots=True)
class ApiTokenAuth:
    """`request.auth` for a request authenticated by a personal API token rather than a JWT."""

    token_id: UUID
