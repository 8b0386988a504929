"""Single sign-on as configured: what `create_app` builds from the settings and hands to the auth
middleware (external bearer tokens) and the sign-in pages (OIDC)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from aicode.auth.repo import UserRepo
from aicode.auth.sso.jwks import JwksCache
from aicode.auth.sso.oidc import OidcClient, OidcConfig
from aicode.auth.sso.repo import ExternalIdentityRepo
from aicode.auth.sso.service import ExternalBearerAuth, ExternalIdentityService
from aicode.auth.sso.signin import OidcSignIn
from aicode.auth.sso.state import SignInStateBox
from aicode.auth.sso.tokens import JwtVerifier
from aicode.db.pool import Database
from aicode.settings import Settings

__all__ = ["SingleSignOn", "build_single_sign_on"]


@dataclass(frozen=True, slots=True)
class SingleSignOn:
    """Each part is None when its settings are unset."""

    bearer: ExternalBearerAuth | None = None  # AICODE_JWT_JWKS_URL
    oidc: OidcSignIn | None = None  # AICODE_OIDC_ISSUER


def build_single_sign_on(settings: Settings, database: Database, secret_key: str) -> SingleSignOn:
    identities = ExternalIdentityService(ExternalIdentityRepo(database), UserRepo(database))
    bearer = None
    if settings.jwt_jwks_url:
        verifier = JwtVerifier(JwksCache(settings.jwt_jwks_url), issuer=settings.jwt_issuer,
                               audience=settings.jwt_audience)
        bearer = ExternalBearerAuth(verifier, identities)
    oidc = None
    if settings.oidc_issuer and settings.oidc_client_id and settings.oidc_client_secret:
        client = OidcClient(OidcConfig(settings.oidc_issuer, settings.oidc_client_id, settings.oidc_client_secret))
        name = settings.oidc_name or urlsplit(settings.oidc_issuer).hostname or settings.oidc_issuer
        oidc = OidcSignIn(client, identities, SignInStateBox(secret_key), name=name,
                          admin_groups=settings.oidc_admin_groups)
    return SingleSignOn(bearer=bearer, oidc=oidc)
