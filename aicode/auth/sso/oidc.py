"""An OpenID Connect provider as a client sees it: discovery, the authorization URL, the code exchange
and ID token verification."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from aicode.auth.sso.jwks import JwksCache
from aicode.auth.sso.provider_http import ProviderError, get_json, post_form
from aicode.auth.sso.tokens import JwtVerifier, TokenRejected

__all__ = ["OidcClient", "OidcConfig", "OidcProvider"]

# Provider metadata rarely changes; an hour keeps a changed endpoint from sticking around for long.
DISCOVERY_MAX_AGE_S = 3600.0
SCOPES = "openid email profile"


@dataclass(frozen=True, slots=True)
class OidcConfig:
    issuer: str
    client_id: str
    client_secret: str


@dataclass(frozen=True, slots=True)
class OidcProvider:
    """The endpoints a provider's discovery document announces."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    # client_secret_basic is the default when a provider lists nothing (OpenID Connect Discovery 1.0).
    secret_in_body: bool = False

    @classmethod
    def from_discovery(cls, body: dict[str, Any], url: str) -> OidcProvider:
        missing = [name for name in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")
                   if not isinstance(body.get(name), str) or not body[name]]
        if missing:
            raise ProviderError(f"the discovery document at {url} lacks {', '.join(missing)}")
        methods = body.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        return cls(issuer=body["issuer"], authorization_endpoint=body["authorization_endpoint"],
                   token_endpoint=body["token_endpoint"], jwks_uri=body["jwks_uri"],
                   secret_in_body="client_secret_basic" not in methods and "client_secret_post" in methods)


class OidcClient:
    """One configured provider; its discovery document and keys are fetched on first use and cached."""

    def __init__(self, config: OidcConfig) -> None:
        self.config = config
        self.discovery_url = config.issuer.rstrip("/") + "/.well-known/openid-configuration"
        self._provider: OidcProvider | None = None
        self._discovered_at = float("-inf")
        self._verifier: JwtVerifier | None = None

    async def provider(self) -> OidcProvider:
        """The provider's endpoints (ProviderError when discovery fails or names another issuer)."""
        if self._provider is None or time.monotonic() - self._discovered_at >= DISCOVERY_MAX_AGE_S:
            provider = OidcProvider.from_discovery(await get_json(self.discovery_url), self.discovery_url)
            if provider.issuer != self.config.issuer:
                # Discovery 1.0 §4.3: the document must be the configured issuer's own.
                raise ProviderError(f"the discovery document at {self.discovery_url} is for issuer "
                                    f"{provider.issuer!r}, not AICODE_OIDC_ISSUER {self.config.issuer!r}")
            if self._verifier is None or self._verifier.keys.url != provider.jwks_uri:
                self._verifier = JwtVerifier(JwksCache(provider.jwks_uri), issuer=self.config.issuer,
                                             audience=self.config.client_id)
            self._provider, self._discovered_at = provider, time.monotonic()
        return self._provider

    async def authorization_url(self, *, redirect_uri: str, state: str, nonce: str, code_challenge: str) -> str:
        """Where to send the browser: the provider's sign-in, coming back to `redirect_uri` with a code."""
        provider = await self.provider()
        query = urlencode({
            "response_type": "code", "client_id": self.config.client_id, "redirect_uri": redirect_uri,
            "scope": SCOPES, "state": state, "nonce": nonce,
            "code_challenge": code_challenge, "code_challenge_method": "S256",
        })
        separator = "&" if "?" in provider.authorization_endpoint else "?"
        return f"{provider.authorization_endpoint}{separator}{query}"

    async def exchange_code(self, *, code: str, redirect_uri: str, code_verifier: str) -> str:
        """Redeem an authorization code for the ID token (ProviderError when the provider refuses)."""
        provider = await self.provider()
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                "code_verifier": code_verifier}
        auth: tuple[str, str] | None = (self.config.client_id, self.config.client_secret)
        if provider.secret_in_body:
            form.update(client_id=self.config.client_id, client_secret=self.config.client_secret)
            auth = None
        status, body = await post_form(provider.token_endpoint, form, auth=auth)
        if status != 200:
            reason = body.get("error_description") or body.get("error") or f"HTTP {status}"
            if body.get("error") == "invalid_grant":  # this sign-in's code or verifier: trying again may do
                raise TokenRejected(f"the identity provider refused the sign-in code: {reason}")
            raise ProviderError(f"the identity provider refused this server's token request: {reason} (check "
                                "AICODE_OIDC_CLIENT_ID, AICODE_OIDC_CLIENT_SECRET and the redirect URI "
                                "registered there)")
        id_token = body.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise ProviderError("the identity provider's token answer has no ID token (is 'openid' allowed?)")
        return id_token

    async def verify_id_token(self, id_token: str, *, nonce: str) -> dict[str, Any]:
        """The ID token's claims once signature, issuer, audience (our client id), expiry and nonce check out."""
        await self.provider()
        assert self._verifier is not None
        claims = await self._verifier.verify(id_token)
        audiences = claims["aud"] if isinstance(claims.get("aud"), list) else [claims.get("aud")]
        if len(audiences) > 1 and claims.get("azp") != self.config.client_id:
            raise TokenRejected("the ID token names several audiences but was not issued to this server (azp)")
        if "azp" in claims and claims["azp"] != self.config.client_id:
            raise TokenRejected("the ID token was issued to another client (azp)")
        if not isinstance(claims.get("nonce"), str) or not secrets.compare_digest(claims["nonce"], nonce):
            raise TokenRejected("the ID token's nonce does not match this sign-in (a replayed or mixed-up token)")
        return claims
