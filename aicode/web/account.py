"""Sign in (password or single sign-on) and out, and the settings page: model keys per provider
(write-only), forge logins, notification webhooks and personal API tokens."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template
from litestar.security.jwt import Token
from litestar.status_codes import HTTP_303_SEE_OTHER

from aicode.auth.models import UserRecord
from aicode.auth.schemas import ApiTokenCreate, MeUpdate
from aicode.auth.security import SESSION_COOKIE
from aicode.auth.service import AuthService
from aicode.auth.sso.config import SingleSignOn
from aicode.auth.sso.state import SIGN_IN_STATE_TTL_S
from aicode.credentials.providers import PROVIDER_LABELS
from aicode.credentials.service import CredentialService
from aicode.errors import AicodeError, AuthenticationError
from aicode.forges.hooks import ForgeHooks
from aicode.forges.schemas import ForgeIdentitiesUpdate
from aicode.notifications.service import NotificationService
from aicode.web.errors import safe_next
from aicode.web.forms import form_values, parse_form
from aicode.web.model_keys import checked_provider, own_keys, submitted_key
from aicode.web.notification_forms import submitted_hook
from aicode.web.shown_once import ShownOnce
from aicode.web.templating import page

__all__ = ["SessionPages", "SettingsPages"]

# What a redirect back to /settings says it did (a query flag instead of server-side flash state).
_DONE = {
    "key": "{provider} key saved. It is stored encrypted and will not be shown again.",
    "key-removed": "{provider} key removed.",
    "revoked": "API token revoked.",
    "forge": "Forge logins saved.",
    "git": "Git identity saved.",
    "notify": "Notification webhook added. Its URL is stored encrypted; only its host is shown.",
    "notify-removed": "Notification webhook removed.",
    "notify-tested": "Test message sent: its outcome is the webhook's last delivery below.",
}


def _notice(done: str | None, provider: str | None) -> str | None:
    notice = _DONE.get(done or "")
    if notice is None or "{provider}" not in notice:
        return notice
    return notice.format(provider=PROVIDER_LABELS[provider]) if provider in PROVIDER_LABELS else None


# The OIDC sign-in's state, nonce and PKCE verifier (encrypted) while the visitor is at the provider;
# SameSite=Lax, so the provider's top-level redirect back still carries it.
OIDC_STATE_COOKIE = "aicode_oidc"
_OIDC_PATH = "/auth/oidc"


def _session_cookie(token: str, expires_at: datetime, *, secure: bool) -> Cookie:
    return Cookie(key=SESSION_COOKIE, value=token, path="/", httponly=True, samesite="lax", secure=secure,
                  max_age=max(0, int((expires_at - datetime.now(UTC)).total_seconds())))


def _sign_in_page(sso: SingleSignOn, *, status_code: int = 200, error: str | None = None, **context: Any) -> Template:
    """The sign-in page, with a "Sign in with <provider>" button when OIDC is configured."""
    return page("login.html", status_code=status_code, sso_name=sso.oidc.name if sso.oidc else None,
                error=error[:1].upper() + error[1:] if error else None, **context)


class SessionPages(Controller):
    include_in_schema = False

    @get("/login", exclude_from_auth=True)
    async def sign_in_form(self, sso: NamedDependency[SingleSignOn],
                           next: FromQuery[str | None] = None) -> Template:  # noqa: A002 (the query name)
        return _sign_in_page(sso, next=safe_next(next))

    @post("/login", exclude_from_auth=True)
    async def sign_in(self, request: Request[Any, Any, Any], auth_service: NamedDependency[AuthService],
                      sso: NamedDependency[SingleSignOn]) -> Response[Any]:
        """Check the password; on success set the session cookie (Secure over https) and go where the visitor was."""
        form = await request.form()
        username, password = str(form.get("username", "")).strip(), str(form.get("password", ""))
        target = safe_next(str(form.get("next", "")))
        try:
            if not username or not password:
                raise AuthenticationError("enter your username and password")
            token, expires_at = await auth_service.login(username, password)
        except AicodeError as exc:  # a wrong password (401), or throttled (429: the message says how long)
            return _sign_in_page(sso, status_code=exc.status_code, error=exc.detail, username=username, next=target)
        response: Response[Any] = Redirect(target, status_code=HTTP_303_SEE_OTHER)
        response.set_cookie(_session_cookie(token, expires_at, secure=request.url.scheme == "https"))
        return response

    @get(f"{_OIDC_PATH}/login", exclude_from_auth=True)
    async def oidc_sign_in(self, request: Request[Any, Any, Any], sso: NamedDependency[SingleSignOn],
                           next: FromQuery[str | None] = None) -> Response[Any]:  # noqa: A002 (the query name)
        """Send the visitor to the identity provider; state, nonce and PKCE verifier wait in a cookie."""
        if sso.oidc is None:
            raise NotFoundException("single sign-on is not configured on this server (AICODE_OIDC_ISSUER)")
        target = safe_next(next)
        redirect_uri = str(request.base_url).rstrip("/") + f"{_OIDC_PATH}/callback"
        try:
            url, sealed = await sso.oidc.begin(redirect_uri=redirect_uri, next=target)
        except AicodeError as exc:
            return _sign_in_page(sso, status_code=exc.status_code, error=exc.detail, next=target)
        response: Response[Any] = Redirect(url, status_code=HTTP_303_SEE_OTHER)
        response.set_cookie(Cookie(key=OIDC_STATE_COOKIE, value=sealed, path=_OIDC_PATH, httponly=True,
                                   samesite="lax", secure=request.url.scheme == "https", max_age=SIGN_IN_STATE_TTL_S))
        return response

    @get(f"{_OIDC_PATH}/callback", exclude_from_auth=True)
    async def oidc_callback(self, request: Request[Any, Any, Any], sso: NamedDependency[SingleSignOn],
                            auth_service: NamedDependency[AuthService]) -> Response[Any]:
        """The provider's answer: on success the same session cookie a password sign-in sets; on any
        failure the sign-in page saying what went wrong."""
        if sso.oidc is None:
            raise NotFoundException("single sign-on is not configured on this server (AICODE_OIDC_ISSUER)")
        answer = {name: request.query_params.get(name) for name in ("code", "state", "error", "error_description")}
        response: Response[Any]
        try:
            user, target = await sso.oidc.complete(answer, request.cookies.get(OIDC_STATE_COOKIE))
        except AicodeError as exc:
            response = _sign_in_page(sso, status_code=exc.status_code, error=exc.detail, next="/")
        else:
            token, expires_at = await auth_service.sign_in_with(user, "oidc")
            response = Redirect(target, status_code=HTTP_303_SEE_OTHER)
            response.set_cookie(_session_cookie(token, expires_at, secure=request.url.scheme == "https"))
        response.delete_cookie(OIDC_STATE_COOKIE, path=_OIDC_PATH)  # one sign-in per state, win or lose
        return response

    @post("/logout")
    async def sign_out(self, request: Request[UserRecord, Any, Any], auth_service: NamedDependency[AuthService]
                       ) -> Response[Any]:
        """Revoke the session's JWT (a copied cookie stops working too) and drop the cookie."""
        if isinstance(request.auth, Token):
            await auth_service.sign_out(request.user, request.auth)
        response: Response[Any] = Redirect("/login", status_code=HTTP_303_SEE_OTHER)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response


class SettingsPages(Controller):
    path = "/settings"
    include_in_schema = False

    @get("/")
    async def settings(
        self, request: Request[UserRecord, Any, Any], auth_service: NamedDependency[AuthService],
        credential_service: NamedDependency[CredentialService], shown_once: NamedDependency[ShownOnce],
        done: FromQuery[str | None] = None, provider: FromQuery[str | None] = None,
    ) -> Response[Any]:
        """The settings; right after a token was made, that token, this once."""
        created = shown_once.take(request, user_id=request.user.id)
        rendered = await self._render(request, auth_service, credential_service, notice=_notice(done, provider),
                                      created=created if "token" in created else None)
        return shown_once.forget(rendered, request, path="/settings")

    @post("/credentials/{provider:str}")
    async def store_key(
        self, provider: FromPath[str], request: Request[UserRecord, Any, Any],
        auth_service: NamedDependency[AuthService], credential_service: NamedDependency[CredentialService],
    ) -> Response[Any]:
        """Store the provider's key or token; the page never shows it back, only its kind and when it was saved."""
        provider = checked_provider(provider)
        try:
            await credential_service.store(request.user, provider, *await submitted_key(request, provider))
        except AicodeError as exc:
            return await self._render(request, auth_service, credential_service, status_code=exc.status_code,
                                      key_errors={provider: exc.detail})
        return Redirect(f"/settings?done=key&provider={provider}#keys-head", status_code=HTTP_303_SEE_OTHER)

    @post("/credentials/{provider:str}/remove")
    async def remove_key(
        self, provider: FromPath[str], request: Request[UserRecord, Any, Any],
        auth_service: NamedDependency[AuthService], credential_service: NamedDependency[CredentialService],
    ) -> Response[Any]:
        provider = checked_provider(provider)
        try:
            await credential_service.remove(request.user, provider)
        except AicodeError as exc:  # already removed (another tab)
            return await self._render(request, auth_service, credential_service, status_code=exc.status_code,
                                      key_errors={provider: exc.detail})
        return Redirect(f"/settings?done=key-removed&provider={provider}#keys-head", status_code=HTTP_303_SEE_OTHER)

    @post("/git-identity")
    async def set_git_identity(
        self, request: Request[UserRecord, Any, Any], auth_service: NamedDependency[AuthService],
        credential_service: NamedDependency[CredentialService],
    ) -> Response[Any]:
        """Your git author name and email; a field left empty goes back to the default."""
        values = await form_values(request, ("git_name", "git_email"))
        try:
            given = {name: values.get(name, "").strip() or None for name in ("git_name", "git_email")}
            await auth_service.set_git_identity(request.user, parse_form(given, MeUpdate))
        except AicodeError as exc:
            return await self._render(request, auth_service, credential_service, status_code=exc.status_code,
                                      git_error=exc.detail)
        return Redirect("/settings?done=git#git-identity-head", status_code=HTTP_303_SEE_OTHER)

    @post("/forge-identities")
    async def link_forge_logins(
        self, request: Request[UserRecord, Any, Any], auth_service: NamedDependency[AuthService],
        credential_service: NamedDependency[CredentialService], forge_hooks: NamedDependency[ForgeHooks],
    ) -> Response[Any]:
        """Link the logins given; a field left empty unlinks that forge."""
        values = await form_values(request, ("github", "gitlab"))
        try:
            given = parse_form({kind: values.get(kind) for kind in ("github", "gitlab")}, ForgeIdentitiesUpdate)
            await forge_hooks.link(request.user, {"github": given.github or None, "gitlab": given.gitlab or None})
        except AicodeError as exc:
            return await self._render(request, auth_service, credential_service, status_code=exc.status_code,
                                      forge_error=exc.detail)
        return Redirect("/settings?done=forge", status_code=HTTP_303_SEE_OTHER)

    @post("/notifications")
    async def add_notification(
        self, request: Request[UserRecord, Any, Any], auth_service: NamedDependency[AuthService],
        credential_service: NamedDependency[CredentialService],
        notification_service: NamedDependency[NotificationService],
    ) -> Response[Any]:
        """Add a webhook called for the tasks you start or run a turn of."""
        try:
            await notification_service.create_own(request.user, await submitted_hook(request))
        except AicodeError as exc:
            return await self._render(request, auth_service, credential_service, status_code=exc.status_code,
                                      notify_error=exc.detail)
        return Redirect("/settings?done=notify#notifications-head", status_code=HTTP_303_SEE_OTHER)

    @post("/notifications/{hook_id:uuid}/test")
    async def test_notification(self, hook_id: FromPath[UUID], request: Request[UserRecord, Any, Any],
                                notification_service: NamedDependency[NotificationService]) -> Redirect:
        """Send a test message now; the list then shows what the receiver answered."""
        await notification_service.test_own(request.user, hook_id)
        return Redirect("/settings?done=notify-tested#notifications-head", status_code=HTTP_303_SEE_OTHER)

    @post("/notifications/{hook_id:uuid}/remove")
    async def remove_notification(self, hook_id: FromPath[UUID], request: Request[UserRecord, Any, Any],
                                  notification_service: NamedDependency[NotificationService]) -> Redirect:
        await notification_service.remove_own(request.user, hook_id)
        return Redirect("/settings?done=notify-removed#notifications-head", status_code=HTTP_303_SEE_OTHER)

    @post("/tokens")
    async def create_token(
        self, request: Request[UserRecord, Any, Any], auth_service: NamedDependency[AuthService],
        credential_service: NamedDependency[CredentialService], shown_once: NamedDependency[ShownOnce],
    ) -> Response[Any]:
        """Create a token; the settings page the answer leads to shows it once (it is stored as a hash)."""
        try:
            data = parse_form(await form_values(request, ("name",)), ApiTokenCreate)
            token, row = await auth_service.create_api_token(request.user, data.name)
        except AicodeError as exc:
            return await self._render(request, auth_service, credential_service, status_code=exc.status_code,
                                      token_error=exc.detail)
        return shown_once.keep(Redirect("/settings#tokens-head", status_code=HTTP_303_SEE_OTHER), request,
                               user_id=request.user.id, path="/settings", name=row["name"], token=token)

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
        keys = await own_keys(credential_service, request.user.id)
        tokens = await auth_service.list_api_tokens(request.user)
        month_spent = await request.app.state.usage_repo.month_spent_by_user(request.user.id)
        forge_identities = await request.app.state.forge_hooks.identities(request.user)
        notify_hooks = await request.app.state.notification_service.list_own(request.user)
        return page("settings.html", status_code=status_code, nav="settings", keys=keys,
                    tokens=tokens, month_spent=month_spent, budget=request.user.monthly_budget_usd,
                    forge_identities=forge_identities, notify_hooks=notify_hooks, **context)
