"""Request and response shapes of the auth endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec

__all__ = [
    "MeUpdate",
    "ApiToken",
    "ApiTokenCreate",
    "ApiTokenCreated",
    "LoginRequest",
    "LoginResponse",
    "SetupRequest",
    "User",
    "UserCreate",
    "UserUpdate",
]

USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
Username = Annotated[
    str,
    msgspec.Meta(
        pattern=USERNAME_PATTERN,
        description="1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
    ),
]
Password = Annotated[str, msgspec.Meta(min_length=8, max_length=1024, description="at least 8 characters")]
TokenName = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class LoginRequest(msgspec.Struct, forbid_unknown_fields=True):
    username: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]


class LoginResponse(msgspec.Struct):
    access_token: str
    expires_at: datetime
    token_type: str = "bearer"


class SetupRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Creates the first admin with the one-time code the server printed at start-up."""

    setup_code: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    username: Username
    password: Password


class User(msgspec.Struct):
    id: UUID
    username: str
    admin: bool
    disabled: bool
    created_at: datetime
    monthly_budget_usd: float | None = None
    git_name: str | None = None  # the author of your turns' commits; None: your username
    git_email: str | None = None  # None: <username>@aicode.invalid


GitName = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
GitEmail = Annotated[str, msgspec.Meta(min_length=3, max_length=200)]


class MeUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """Your git identity; a field sent as null goes back to the default, a field left out is kept."""

    git_name: GitName | None | msgspec.UnsetType = msgspec.UNSET
    git_email: GitEmail | None | msgspec.UnsetType = msgspec.UNSET


class UserCreate(msgspec.Struct, forbid_unknown_fields=True):
    username: Username
    password: Password
    admin: bool = False


class UserUpdate(msgspec.Struct, forbid_unknown_fields=True):
    disabled: bool | None = None
    password: Password | None = None
    admin: bool | None = None
    # USD of model calls per calendar month (UTC); null removes the cap.
    monthly_budget_usd: Annotated[float, msgspec.Meta(ge=0, le=1_000_000)] | None | msgspec.UnsetType = msgspec.UNSET


class ApiTokenCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: TokenName


class ApiTokenCreated(msgspec.Struct):
    """The only answer that ever carries the token itself."""

    id: UUID
    name: str
    token: str
    prefix: str
    created_at: datetime


class ApiToken(msgspec.Struct):
    id: UUID
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
