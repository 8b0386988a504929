"""Browser sign-in through an OpenID Connect provider: the authorization code flow with PKCE, state and nonce."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

import structlog

from aicode.auth.models import UserRecord
from aicode.auth.sso.oidc import OidcClient
from aicode.auth.sso.provider_http import ProviderError
from aicode.auth.sso.service import ExternalIdentityService
from aicode.auth.sso.state import SignInState, SignInStateBox, pkce_challenge
from aicode.errors import AuthenticationError, InvalidInputError

__all__ = ["OidcSignIn", "admin_by_groups"]

log = structlog.get_logger(__name__)


def admin_by_groups(claims: Mapping[str, Any], admin_groups: tuple[str, ...]) -> bool | None:
    """What the ID token says about the admin role: None when no admin groups are configured (roles are
    then managed in aicode), else whether its `groups` (or `roles`) claim names one of them."""
    if not admin_groups:
        return None
    held: set[str] = set()
    for claim in ("groups", "roles"):
        value = claims.get(claim)
        values = [value] if isinstance(value, str) else value if isinstance(value, list) else []
        held.update(item for item in values if isinstance(item, str))
    return not held.isdisjoint(admin_groups)


class OidcSignIn:
    """Starts a sign-in (where to send the browser, and the sealed state for its cookie) and finishes it
    (the provider's answer and that cookie → the signed-in user and where to go next)."""

    def __init__(self, client: OidcClient, identities: ExternalIdentityService, box: SignInStateBox, *,
                 name: str, admin_groups: tuple[str, ...] = ()) -> None:
        self.client = client
        self.name = name  # shown on the sign-in button
        self._identities = identities
        self._box = box
        self._admin_groups = admin_groups

    async def begin(self, *, redirect_uri: str, next: str) -> tuple[str, str]:  # noqa: A002 (the query name)
        """(the provider's authorization URL, the sealed state to keep in a cookie); ProviderError when
        the provider cannot be discovered."""
        state = SignInState.fresh(redirect_uri, next)
        url = await self.client.authorization_url(redirect_uri=redirect_uri, state=state.state, nonce=state.nonce,
                                                  code_challenge=pkce_challenge(state.code_verifier))
        return url, self._box.seal(state)

    async def complete(self, answer: Mapping[str, str | None], sealed: str | None) -> tuple[UserRecord, str]:
        """The user the provider vouches for and the local path to return to. Raises an AicodeError that
        says what went wrong: refused consent, a mismatched or expired sign-in, a bad ID token, a provider
        that is down, a disabled account."""
        try:
            state = self._check_answer(answer, sealed)
            id_token = await self.client.exchange_code(code=answer["code"] or "", redirect_uri=state.redirect_uri,
                                                       code_verifier=state.code_verifier)
            claims = await self.client.verify_id_token(id_token, nonce=state.nonce)
            admin = admin_by_groups(claims, self._admin_groups)
            user = await self._identities.user_for(self.client.config.issuer, claims, admin=admin)
        except (AuthenticationError, InvalidInputError, ProviderError) as exc:
            log.warning("sso.sign_in_refused", issuer=self.client.config.issuer, reason=exc.detail)
            raise
        log.info("sso.sign_in", username=user.username, issuer=self.client.config.issuer, admin=user.is_admin)
        return user, state.next

    def _check_answer(self, answer: Mapping[str, str | None], sealed: str | None) -> SignInState:
        state = self._box.open(sealed) if sealed else None
        if state is None:
            raise InvalidInputError("this sign-in expired or was started in another browser; please try again")
        # The state is checked before an error is shown: a crafted link must not put its own words on this page.
        if not secrets.compare_digest(answer.get("state") or "", state.state):
            raise InvalidInputError("this sign-in answer does not belong to this browser's sign-in (state "
                                    "mismatch); please try again")
        if answer.get("error"):
            reason = (answer.get("error_description") or answer.get("error") or "")[:200]
            raise AuthenticationError(f"{self.name} did not sign you in: {reason}")
        if not answer.get("code"):
            raise InvalidInputError(f"{self.name} sent no authorization code; please try again")
        return state
