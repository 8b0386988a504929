"""HTTP endpoints for sign-in, the current user, API tokens and user administration."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.security.jwt import Token
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from aicode.auth.guards import requires_admin
from aicode.auth.models import ApiTokenAuth, UserRecord
from aicode.auth.schemas import (
    ApiToken,
    ApiTokenCreate,
    ApiTokenCreated,
    LoginRequest,
    LoginResponse,
    MeUpdate,
    SetupRequest,
    User,
    UserCreate,
    UserUpdate,
)
from aicode.auth.service import AuthService

__all__ = ["AdminUserController", "AuthController", "MeController", "TokenController"]


def user_out(user: UserRecord) -> User:
    return User(id=user.id, username=user.username, admin=user.is_admin, disabled=user.disabled,
                created_at=user.created_at, monthly_budget_usd=user.monthly_budget_usd, git_name=user.git_name,
                git_email=user.git_email)


class AuthController(Controller):
    path = "/api/auth"
    tags = ["auth"]

    @post("/login", exclude_from_auth=True, status_code=200)
    async def login(self, data: JSONBody[LoginRequest], auth_service: NamedDependency[AuthService]) -> LoginResponse:
        """Exchange a username and password for a signed JWT."""
        token, expires_at = await auth_service.login(data.username, data.password)
        return LoginResponse(access_token=token, expires_at=expires_at)

    @post("/setup", exclude_from_auth=True, status_code=HTTP_201_CREATED)
    async def setup(self, data: JSONBody[SetupRequest], auth_service: NamedDependency[AuthService]) -> User:
        """Create the first admin with the one-time code printed at start-up (only while there are no users)."""
        return user_out(await auth_service.create_first_admin(data.setup_code, data.username, data.password))

    @post("/logout", status_code=HTTP_204_NO_CONTENT)
    async def logout(self, request: Request[UserRecord, Any, Any], auth_service: NamedDependency[AuthService]) -> None:
        """End the credential this request used: the JWT is revoked, or the API token is."""
        if isinstance(request.auth, Token):
            await auth_service.sign_out(request.user, request.auth)
        elif isinstance(request.auth, ApiTokenAuth):
            await auth_service.revoke_api_token(request.user, request.auth.token_id)


class MeController(Controller):
    path = "/api/me"
    tags = ["auth"]

    @get("/")
    async def me(self, request: Request[UserRecord, Any, Any]) -> User:
        """The signed-in user."""
        return user_out(request.user)

    @patch("/")
    async def update(
        self, data: JSONBody[MeUpdate], request: Request[UserRecord, Any, Any], auth_service: NamedDependency[AuthService]
    ) -> User:
        """Your git identity: the author name and email of the commits of the turns you ask for."""
        return user_out(await auth_service.set_git_identity(request.user, data))


class TokenController(Controller):
    path = "/api/tokens"
    tags = ["auth"]

    @post("/", status_code=HTTP_201_CREATED)
    async def create(
        self, data: JSONBody[ApiTokenCreate], request: Request[UserRecord, Any, Any], auth_service: NamedDependency[AuthService]
    ) -> ApiTokenCreated:
        """Create a personal API token. The token is in this answer only; store it now."""
        token, row = await auth_service.create_api_token(request.user, data.name)
        return ApiTokenCreated(token=token, **row)

    @get("/")
    async def list_tokens(self, request: Request[UserRecord, Any, Any], auth_service: NamedDependency[AuthService]) -> list[ApiToken]:
        """Your live API tokens (never the tokens themselves)."""
        return [ApiToken(**row) for row in await auth_service.list_api_tokens(request.user)]

    @delete("/{token_id:uuid}", status_code=HTTP_204_NO_CONTENT)
    async def revoke(self, token_id: FromPath[UUID], request: Request[UserRecord, Any, Any], auth_service: NamedDependency[AuthService]) -> None:
        """Revoke one of your API tokens; it stops working at once."""
        await auth_service.revoke_api_token(request.user, token_id)


class AdminUserController(Controller):
    path = "/api/admin/users"
    tags = ["admin"]
    guards = [requires_admin]

    @post("/", status_code=HTTP_201_CREATED)
    async def create(self, data: JSONBody[UserCreate], request: Request[UserRecord, Any, Any],
                     auth_service: NamedDependency[AuthService]) -> User:
        return user_out(await auth_service.create_user(data.username, data.password, admin=data.admin,
                                                      actor=request.user))

    @get("/")
    async def list_users(self, auth_service: NamedDependency[AuthService]) -> list[User]:
        return [user_out(user) for user in await auth_service.list_users()]

    @patch("/{user_id:uuid}")
    async def update(
        self, user_id: FromPath[UUID], data: JSONBody[UserUpdate], request: Request[UserRecord, Any, Any], auth_service: NamedDependency[AuthService]
    ) -> User:
        """Disable or enable a user, reset their password, change their role or monthly model budget."""
        budget = None if data.monthly_budget_usd is msgspec.UNSET else (data.monthly_budget_usd,)
        user = await auth_service.update_user(
            request.user, user_id, disabled=data.disabled, password=data.password, admin=data.admin, budget=budget
        )
        return user_out(user)
