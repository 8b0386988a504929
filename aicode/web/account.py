"""Sign in and out, and the settings page: the Anthropic credential (write-only) and personal API tokens."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template
from litestar.security.jwt import Token
from litestar.status_codes import HTTP_303_SEE_OTHER

from aicode.auth.models import UserRecord
from aicode.auth.schemas import ApiTokenCreate
from aicode.auth.security import SESSION_COOKIE
from aicode.auth.service import AuthService
from aicode.credentials.controller import AnthropicCredential
from aicode.credentials.service import CredentialService
from aicode.errors import AicodeError, AuthenticationError, InvalidInputError
from aicode.web.errors import safe_next
from aicode.web.forms import form_values, parse_form
from aicode.web.templating import page

__all__ = ["SessionPages", "SettingsPages"]

# What a redirect back to /settings says it did (a query flag instead of server-side flash state).
_DONE = {
    "credential": "Anthropic credential saved. It is stored encrypted and will not be shown again.",
    "credential-removed": "Anthropic credential removed.",
    "revoked": "API token revoked.",
}


def _session_cookie(token: str, expires_at: datetime, *, secure: bool) -> Cookie:
    return Cookie(key=SESSION_COOKIE, value=token, path="/", httponly=True, samesite="lax", secure=secure,
                  max_age=max(0, int((expires_at - datetime.now(UTC)).total_seconds())))


class SessionPages(Controller):
    include_in_schema = False

    @get("/login", exclude_from_auth=True)
    async def sign_in_form(self, next: FromQuery[str | None] = None) -> Template:  # noqa: A002 (the query name)
        return page("login.html", next=safe_next(next))

    @post("/login", exclude_from_auth=True)
    async def sign_in(self, request: Request[Any, Any, Any], auth_service: NamedDependency[AuthService]) -> Response[Any]:
        """Check the password; on success set the session cookie (Secure over https) and go where the visitor was."""
        form = await request.form()
        username, password = str(form.get("username", "")).strip(), str(form.get("password", ""))
        target = safe_next(str(form.get("next", "")))
        try:
            if not username or not password:
                raise AuthenticationError("enter your username and password")
            token, expires_at = await auth_service.login(username, password)
        except AuthenticationError as exc:
            return page("login.html", status_code=401, error=exc.detail.capitalize(), username=username, next=target)
        response: Response[Any] = Redirect(target, status_code=HTTP_303_SEE_OTHER)
        response.set_cookie(_session_cookie(token, expires_at, secure=request.url.scheme == "https"))
        return response

    @post("/logout")
    async def sign_out(self, request: Request[UserRecord, Any, Any], auth_service: NamedDependency[AuthService]
                       ) -> Response[Any]:
        """Revoke the session's JWT (a copied cookie stops working too) and drop the cookie."""
        if isinstance(request.auth, Token):
            await auth_service.revoke_jwt(request.auth)
        response: Response[Any] = Redirect("/login", status_code=HTTP_303_SEE_OTHER)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response


class SettingsPages(Controller):
    path = "/settings"
    include_in_schema = False

    @get("/")
    async def settings(
        self, request: Request[UserRecord, Any, Any], auth_service: NamedDependency[AuthService],
        credential_service: NamedDependency[CredentialService], done: FromQuery[str | None] = None,
    ) -> Template:
        return await self._render(request, auth_service, credential_service, notice=_DONE.get(done or ""))

    @post("/credential")
    async def store_credential(
        self, request: Request[UserRecord, Any, Any], auth_service: NamedDependency[AuthService],
        credential_service: NamedDependency[CredentialService],
    ) -> Response[Any]:
        """Store the key or token; the page never shows it back, only its kind and when it was saved."""
        values = await form_values(request, ("kind", "secret"))
        try:
            kind = values.get("kind", "api_key")
            if kind not in ("api_key", "oauth_token"):
                raise InvalidInputError("choose an API key or an OAuth token")
            parse_form({kind: values.get("secret", "")}, AnthropicCredential)
            if any(ch.isspace() for ch in values.get("secret", "")):
                raise InvalidInputError("the key must not contain spaces or line breaks")
            await credential_service.store(request.user.id, kind, values["secret"])
        except AicodeError as exc:
            return await self._render(request, auth_service, credential_service, status_code=exc.status_code,
                                      credential_error=exc.detail)
        return Redirect("/settings?done=credential", status_code=HTTP_303_SEE_OTHER)

    @post("/credential/remove")
    async def remove_credential(
        self, request: Request[UserRecord, Any, Any], credential_service: NamedDependency[CredentialService],
    ) -> Redirect:
        await credential_service.remove(request.user.id)
        return Redirect("/settings?done=credential-removed", status_code=HTTP_303_SEE_OTHER)

    @post("/tokens")
    async def create_token(
        self, request: Request[UserRecord, Any, Any], auth_service: NamedDependency[AuthService],
        credential_service: NamedDependency[CredentialService],
    ) -> Template:
        """Create a token and show it on this answer only: it is stored as a hash."""
        try:
            data = parse_form(await form_values(request, ("name",)), ApiTokenCreate)
            token, row = await auth_service.create_api_token(request.user, data.name)
        except AicodeError as exc:
            return await self._render(request, auth_service, credential_service, status_code=exc.status_code,
                                      token_error=exc.detail)
        return await self._render(request, auth_service, credential_service, status_code=201,
                                  created={"name": row["name"], "token": token})

    @post("/tokens/{token_id:uuid}/revoke")
    async def revoke_token(
        self, token_id: FromPath[UUID], request: Request[UserRecord, Any, Any],
        auth_service: NamedDependency[AuthService],
    ) -> Redirect:
        await auth_service.revoke_api_token(request.user, token_id)
        return Redirect("/settings?done=revoked", status_code=HTTP_303_SEE_OTHER)

    @staticmethod
    async def _render(
        request: Request[UserRecord, Any, Any], auth_service: AuthService, credential_service: CredentialService,
        *, status_code: int = 200, **context: Any,
    ) -> Template:
        credential = await credential_service.describe(request.user.id)
        tokens = await auth_service.list_api_tokens(request.user)
        month_spent = await request.app.state.usage_repo.month_spent_by_user(request.user.id)
        return page("settings.html", status_code=status_code, nav="settings", credential=credential,
                    tokens=tokens, month_spent=month_spent, budget=request.user.monthly_budget_usd, **context)
