"""Single sign-on against an identity provider the tests run themselves: external bearer tokens
verified through its JWKS, and the browser's OIDC sign-in driven through the redirects with httpx."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import pytest
from litestar.testing import AsyncTestClient

from aicode.app import create_app
from aicode.auth.sso.jwks import JwksCache, SigningKeyUnknown
from aicode.auth.sso.usernames import username_base
from aicode.settings import Settings, SettingsError
from tests.cli_support import free_port
from tests.conftest import ADMIN, login, make_user
from tests.fakes.identity_provider import FakeIdentityProvider, SigningKey, hmac_token, unsigned_token

AUDIENCE = "aicode-api"
ADMIN_GROUP = "aicode-admins"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _sso(settings: Settings, idp: FakeIdentityProvider, **overrides: object) -> Settings:
    return dataclasses.replace(
        settings, jwt_jwks_url=idp.jwks_url, jwt_issuer=idp.issuer, jwt_audience=AUDIENCE,
        oidc_issuer=idp.issuer, oidc_client_id=idp.client_id, oidc_client_secret=idp.client_secret,
        oidc_admin_groups=(ADMIN_GROUP,), oidc_name="Fake IdP", **overrides)


@pytest.fixture
async def idp() -> AsyncIterator[FakeIdentityProvider]:
    async with FakeIdentityProvider() as provider:
        yield provider


@pytest.fixture
async def app(settings: Settings, idp: FakeIdentityProvider) -> AsyncIterator[AsyncTestClient]:
    async with AsyncTestClient(app=create_app(_sso(settings, idp))) as client:
        yield client


async def _users(client: AsyncTestClient) -> dict[str, dict]:
    admin = await login(client, *ADMIN)
    return {user["username"]: user for user in (await client.get("/api/admin/users", headers=admin)).json()}


# -- external bearer tokens ------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
async def test_a_provider_token_is_accepted_and_provisions_its_user_once(
    app: AsyncTestClient, idp: FakeIdentityProvider, alg: str
) -> None:
    first = await app.get("/api/me", headers=_bearer(idp.mint(alg=alg, aud=AUDIENCE)))
    second = await app.get("/api/me", headers=_bearer(idp.mint(alg=alg, aud=AUDIENCE)))
    assert first.status_code == 200, first.text
    assert first.json()["username"] == "ada" and first.json()["admin"] is False
    assert second.json()["id"] == first.json()["id"]
    assert [name for name in await _users(app) if name.startswith("ada")] == ["ada"]


async def test_a_supabase_access_token_works_as_it_is(settings: Settings) -> None:
    async with FakeIdentityProvider(base_path="/auth/v1") as project:
        sub = str(uuid.uuid4())
        project.user = {"sub": sub}
        token = project.mint(
            alg="ES256", aud="authenticated", role="authenticated", email="grace@example.com", phone="",
            app_metadata={"provider": "email", "providers": ["email"]}, user_metadata={"email_verified": True},
            aal="aal1", amr=[{"method": "password", "timestamp": 1700000000}], session_id=str(uuid.uuid4()),
            is_anonymous=False)
        supabase = dataclasses.replace(settings, jwt_jwks_url=f"{project.url}/auth/v1/.well-known/jwks.json",
                                       jwt_issuer=f"{project.url}/auth/v1", jwt_audience="authenticated")
        async with AsyncTestClient(app=create_app(supabase)) as client:
            me = await client.get("/api/me", headers=_bearer(token))
    assert me.status_code == 200, me.text
    assert me.json()["username"] == "grace" and me.json()["admin"] is False


async def test_a_token_of_a_rotated_key_is_accepted_after_one_refetch(
    app: AsyncTestClient, idp: FakeIdentityProvider
) -> None:
    assert (await app.get("/api/me", headers=_bearer(idp.mint(aud=AUDIENCE)))).status_code == 200
    assert idp.jwks_fetches == 1
    idp.rotate("RS256")
    rotated = await app.get("/api/me", headers=_bearer(idp.mint(aud=AUDIENCE)))
    assert rotated.status_code == 200, rotated.text
    assert idp.jwks_fetches == 2


async def test_a_flood_of_unknown_key_ids_does_not_refetch_the_keys_each_time(
    app: AsyncTestClient, idp: FakeIdentityProvider
) -> None:
    assert (await app.get("/api/me", headers=_bearer(idp.mint(aud=AUDIENCE)))).status_code == 200
    strange_key = SigningKey.generate("RS256").private_key
    for n in range(20):
        stranger = SigningKey(kid=f"made-up-{n}", alg="RS256", private_key=strange_key)
        refused = await app.get("/api/me", headers=_bearer(idp.mint(key=stranger, aud=AUDIENCE)))
        assert refused.status_code == 401
        assert "unknown key" in refused.json()["detail"]
    assert idp.jwks_fetches == 2  # the first fetch, and one for the first unknown key id


async def test_unknown_key_ids_refetch_the_keys_at_most_once_a_minute(idp: FakeIdentityProvider) -> None:
    now = [0.0]
    keys = JwksCache(idp.jwks_url, refetch_interval_s=60, max_age_s=3600, clock=lambda: now[0])
    assert (await keys.key(idp.key("RS256").kid)).key_id == idp.key("RS256").kid
    for unknown, at, fetches in [("a", 1, 2), ("b", 30, 2), ("c", 62, 3), ("d", 63, 3)]:
        now[0] = at
        with pytest.raises(SigningKeyUnknown):
            await keys.key(unknown)
        assert idp.jwks_fetches == fetches, (unknown, at)
    now[0] = 3700  # older than max_age: fetched again whatever the token names
    await keys.key(idp.key("ES256").kid)
    assert idp.jwks_fetches == 4


async def test_a_provider_whose_keys_cannot_be_fetched_means_401_not_a_hang(settings: Settings) -> None:
    gone = f"http://127.0.0.1:{free_port()}/.well-known/jwks.json"
    async with FakeIdentityProvider() as idp, AsyncTestClient(
            app=create_app(dataclasses.replace(settings, jwt_jwks_url=gone))) as client:
        refused = await client.get("/api/me", headers=_bearer(idp.mint()))
    assert refused.status_code == 401
    assert "could not be fetched" in refused.json()["detail"]


def _forgeries(idp: FakeIdentityProvider) -> dict[str, tuple[str, str]]:
    """Tokens that must be refused, and a word the refusal's detail must contain."""
    rsa = idp.key("RS256")
    claims = idp.claims(aud=AUDIENCE)
    return {
        "wrong issuer": (idp.mint(aud=AUDIENCE, iss="https://evil.example"), "issuer"),
        "wrong audience": (idp.mint(aud="someone-else"), "audience"),
        "no audience": (idp.mint(), "aud"),
        "expired": (idp.mint(aud=AUDIENCE, lifetime_s=-120), "expired"),
        "no expiry": (idp.mint(aud=AUDIENCE, exp=None), "exp"),
        "alg none": (unsigned_token(claims, {"kid": rsa.kid}), "algorithm"),
        "HS256 keyed with the public key": (hmac_token(claims, rsa.public_pem(), {"kid": rsa.kid}), ""),
        "RS512": (jwt_with(rsa, claims, "RS512"), "algorithm"),
        "another provider's key under a known kid": (
            SigningKey.generate("RS256", kid=rsa.kid).sign(claims), "signature"),
        "ES256 header on the RSA key": (hmac_token(claims, b"x", {"kid": rsa.kid, "alg": "ES256"}), "match"),
    }


def jwt_with(key: SigningKey, claims: dict, alg: str) -> str:
    return jwt.encode(claims, key.private_key, algorithm=alg, headers={"kid": key.kid})


@pytest.mark.parametrize("case", ["wrong issuer", "wrong audience", "no audience", "expired", "no expiry",
                                  "alg none", "HS256 keyed with the public key", "RS512",
                                  "another provider's key under a known kid", "ES256 header on the RSA key"])
async def test_a_bad_external_token_answers_401_and_provisions_nobody(
    app: AsyncTestClient, idp: FakeIdentityProvider, case: str
) -> None:
    token, word = _forgeries(idp)[case]
    refused = await app.get("/api/me", headers=_bearer(token))
    assert refused.status_code == 401, refused.text
    assert word.lower() in refused.json()["detail"].lower()
    assert "ada" not in await _users(app)


async def test_an_external_token_is_refused_when_no_jwks_is_configured(
    client: AsyncTestClient, idp: FakeIdentityProvider
) -> None:
    assert (await client.get("/api/me", headers=_bearer(idp.mint(aud=AUDIENCE)))).status_code == 401
    assert idp.jwks_fetches == 0


async def test_a_refused_external_token_is_logged_without_the_token(
    app: AsyncTestClient, idp: FakeIdentityProvider, caplog: pytest.LogCaptureFixture
) -> None:
    token = idp.mint(aud=AUDIENCE, lifetime_s=-120)
    with caplog.at_level(logging.INFO):
        assert (await app.get("/api/me", headers=_bearer(token))).status_code == 401
    assert "auth.rejected" in caplog.text and "external_jwt" in caplog.text and "expired" in caplog.text
    assert token not in caplog.text and token.split(".")[2] not in caplog.text


async def test_a_disabled_sso_users_tokens_are_refused(app: AsyncTestClient, idp: FakeIdentityProvider) -> None:
    me = (await app.get("/api/me", headers=_bearer(idp.mint(aud=AUDIENCE)))).json()
    admin = await login(app, *ADMIN)
    assert (await app.patch(f"/api/admin/users/{me['id']}", json={"disabled": True}, headers=admin)).status_code == 200
    refused = await app.get("/api/me", headers=_bearer(idp.mint(aud=AUDIENCE)))
    assert refused.status_code == 401
    assert "disabled" in refused.json()["detail"]


async def test_an_sso_user_cannot_sign_in_with_a_password(app: AsyncTestClient, idp: FakeIdentityProvider) -> None:
    assert (await app.get("/api/me", headers=_bearer(idp.mint(aud=AUDIENCE)))).status_code == 200
    for password in ("!sso", "", "ada-password"):
        refused = await app.post("/api/auth/login", json={"username": "ada", "password": password or "x"})
        assert refused.status_code == 401


async def test_aicode_own_tokens_still_work_beside_external_ones(app: AsyncTestClient) -> None:
    admin = await login(app, *ADMIN)
    assert (await app.get("/api/me", headers=admin)).json()["username"] == ADMIN[0]
    created = await app.post("/api/tokens", json={"name": "cli"}, headers=admin)
    assert (await app.get("/api/me", headers=_bearer(created.json()["token"]))).status_code == 200


async def test_a_taken_username_gets_a_suffix(app: AsyncTestClient, idp: FakeIdentityProvider) -> None:
    await make_user(app, await login(app, *ADMIN), "ada")
    me = await app.get("/api/me", headers=_bearer(idp.mint(aud=AUDIENCE)))
    assert me.json()["username"] == "ada-2"


@pytest.mark.parametrize(("claims", "expected"), [
    ({"preferred_username": "ada", "email": "x@example.com", "sub": "1"}, "ada"),
    ({"preferred_username": "ada.l@corp.example", "sub": "1"}, "ada.l"),
    ({"email": "José.Núñez+dev@example.com", "sub": "1"}, "Jose.Nunez-dev"),
    ({"preferred_username": "  ", "email": "__grace@example.com", "sub": "1"}, "grace"),
    ({"sub": "b2c5e2a0-3f7e-4a43-9d6c-2f8d3d1f0a11"}, "b2c5e2a0-3f7e-4a43-9d6c-2f8d3d1f0a11"),
    ({"sub": "auth0|12345"}, "auth0-12345"),
    ({"sub": "日本"}, "user"),
])
def test_usernames_are_derived_from_the_claims(claims: dict, expected: str) -> None:
    assert username_base(claims) == expected


# -- browser sign-in through OIDC ------------------------------------------------------------------


async def _leave_for_the_provider(client: AsyncTestClient, next_path: str = "/") -> str:
    """Start a sign-in; answers the provider's answer (the callback URL) after it approved."""
    start = await client.get(f"/auth/oidc/login?{urlencode({'next': next_path})}", follow_redirects=False)
    assert start.status_code == 303, start.text
    async with httpx.AsyncClient() as at_provider:
        approved = await at_provider.get(start.headers["location"], follow_redirects=False)
    assert approved.status_code == 302, approved.text
    return approved.headers["location"]


async def _sign_in(client: AsyncTestClient, next_path: str = "/") -> httpx.Response:
    return await client.get(await _leave_for_the_provider(client, next_path), follow_redirects=False)


async def test_oidc_sign_in_sets_the_session_cookie_and_returns_to_next(
    app: AsyncTestClient, idp: FakeIdentityProvider
) -> None:
    done = await _sign_in(app, "/workspaces")
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/workspaces"
    assert "aicode_session" in app.cookies
    me = await app.get("/api/me")
    assert me.status_code == 200 and me.json()["username"] == "ada"
    asked = idp.authorize_requests[0]
    assert asked["code_challenge_method"] == "S256" and asked["nonce"] and asked["state"]
    assert idp.tokens_issued == 1 and idp.token_refusals == []
    assert "aicode_oidc" not in app.cookies  # the sign-in state is one use only


async def test_a_member_of_an_admin_group_signs_in_as_admin_and_loses_it_with_the_group(
    app: AsyncTestClient, idp: FakeIdentityProvider
) -> None:
    idp.user = {**idp.user, "groups": ["staff", ADMIN_GROUP]}
    await _sign_in(app)
    assert (await app.get("/api/me")).json()["admin"] is True
    idp.user = {**idp.user, "groups": ["staff"]}
    await _sign_in(app)
    assert (await app.get("/api/me")).json()["admin"] is False


async def test_the_roles_claim_counts_as_groups(app: AsyncTestClient, idp: FakeIdentityProvider) -> None:
    idp.user = {**idp.user, "roles": [ADMIN_GROUP]}
    await _sign_in(app)
    assert (await app.get("/api/me")).json()["admin"] is True


async def test_without_an_admin_group_an_sso_user_is_a_member(app: AsyncTestClient, idp: FakeIdentityProvider) -> None:
    await _sign_in(app)
    assert (await app.get("/api/me")).json()["admin"] is False


async def test_a_person_is_one_user_through_the_browser_and_bearer_tokens(
    app: AsyncTestClient, idp: FakeIdentityProvider
) -> None:
    await _sign_in(app)
    by_cookie = (await app.get("/api/me")).json()
    app.cookies.clear()
    by_token = (await app.get("/api/me", headers=_bearer(idp.mint(aud=AUDIENCE)))).json()
    assert by_token["id"] == by_cookie["id"]


async def _refused(client: AsyncTestClient, callback: str, status: int, words: str) -> None:
    page = await client.get(callback, follow_redirects=False)
    assert page.status_code == status, page.text
    assert "text/html" in page.headers["content-type"] and 'role="alert"' in page.text
    assert words in page.text
    assert "Traceback" not in page.text and "aicode_session" not in client.cookies


async def test_a_callback_whose_state_does_not_match_is_refused(app: AsyncTestClient) -> None:
    callback = urlsplit(await _leave_for_the_provider(app))
    query = {k: v[0] for k, v in parse_qs(callback.query).items()} | {"state": "forged"}
    await _refused(app, f"{callback.path}?{urlencode(query)}", 400, "state mismatch")


async def test_a_callback_in_another_browser_is_refused(app: AsyncTestClient) -> None:
    callback = await _leave_for_the_provider(app)
    app.cookies.clear()
    await _refused(app, callback, 400, "started in another browser")


async def test_an_id_token_with_the_wrong_nonce_is_refused(app: AsyncTestClient, idp: FakeIdentityProvider) -> None:
    idp.id_token_claims = {"nonce": "from-another-sign-in"}
    await _refused(app, await _leave_for_the_provider(app), 401, "nonce does not match")


async def test_an_id_token_for_another_client_is_refused(app: AsyncTestClient, idp: FakeIdentityProvider) -> None:
    idp.id_token_claims = {"aud": "another-client"}
    await _refused(app, await _leave_for_the_provider(app), 401, "audience")


async def test_the_provider_checks_the_pkce_verifier(app: AsyncTestClient, idp: FakeIdentityProvider) -> None:
    idp.break_pkce = True
    await _refused(app, await _leave_for_the_provider(app), 401, "PKCE verification failed")
    assert idp.token_refusals == ["invalid_grant: PKCE verification failed"]


async def test_a_wrong_client_secret_is_refused_by_the_provider(
    settings: Settings, idp: FakeIdentityProvider
) -> None:
    wrong = _sso(settings, idp)
    async with AsyncTestClient(app=create_app(dataclasses.replace(wrong, oidc_client_secret="nope"))) as client:
        await _refused(client, await _leave_for_the_provider(client), 503, "AICODE_OIDC_CLIENT_SECRET")


async def test_denied_consent_shows_the_sign_in_page_with_the_reason(
    app: AsyncTestClient, idp: FakeIdentityProvider
) -> None:
    idp.deny = "access_denied"
    await _refused(app, await _leave_for_the_provider(app), 401, "Fake IdP did not sign you in")


async def test_a_provider_that_is_down_is_named_on_the_sign_in_page(settings: Settings) -> None:
    gone = f"http://127.0.0.1:{free_port()}"
    down = dataclasses.replace(settings, oidc_issuer=gone, oidc_client_id="c", oidc_client_secret="s")
    async with AsyncTestClient(app=create_app(down)) as client:
        page = await client.get("/auth/oidc/login?next=/", follow_redirects=False)
    assert page.status_code == 503
    assert "did not answer" in page.text and gone in page.text


async def test_the_sign_in_page_offers_the_provider(app: AsyncTestClient) -> None:
    page = await app.get("/login?next=/workspaces")
    assert "Sign in with Fake IdP" in page.text
    assert 'href="/auth/oidc/login?next=/workspaces"' in page.text


async def test_without_oidc_settings_there_is_no_provider_to_sign_in_with(client: AsyncTestClient) -> None:
    assert "Sign in with" not in (await client.get("/login")).text
    assert (await client.get("/auth/oidc/login", follow_redirects=False)).status_code == 404


# -- settings --------------------------------------------------------------------------------------


def test_single_sign_on_settings_are_read(tmp_path: Path) -> None:
    settings = Settings.from_env({
        "AICODE_DATA_DIR": str(tmp_path), "AICODE_JWT_JWKS_URL": "https://p.supabase.co/auth/v1/.well-known/jwks.json",
        "AICODE_JWT_ISSUER": "https://p.supabase.co/auth/v1", "AICODE_JWT_AUDIENCE": "authenticated",
        "AICODE_OIDC_ISSUER": "https://id.example.com/", "AICODE_OIDC_CLIENT_ID": "aicode",
        "AICODE_OIDC_CLIENT_SECRET": "s3cret", "AICODE_OIDC_ADMIN_GROUPS": "admins, ops", "AICODE_OIDC_NAME": "Corp",
    })
    assert settings.oidc_issuer == "https://id.example.com/"  # issuers are compared exactly: kept as given
    assert settings.oidc_admin_groups == ("admins", "ops")
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize(("env", "needle"), [
    ({"AICODE_JWT_JWKS_URL": "http://idp.example.com/jwks"}, "AICODE_JWT_JWKS_URL"),
    ({"AICODE_JWT_ISSUER": "https://idp.example.com"}, "AICODE_JWT_JWKS_URL"),
    ({"AICODE_OIDC_ISSUER": "https://idp.example.com"}, "AICODE_OIDC_CLIENT_ID"),
    ({"AICODE_OIDC_ISSUER": "https://idp.example.com", "AICODE_OIDC_CLIENT_ID": "c"}, "AICODE_OIDC_CLIENT_SECRET"),
    ({"AICODE_OIDC_CLIENT_ID": "c"}, "AICODE_OIDC_ISSUER"),
    ({"AICODE_OIDC_ADMIN_GROUPS": "admins"}, "AICODE_OIDC_ISSUER"),
    ({"AICODE_OIDC_ISSUER": "idp.example.com"}, "AICODE_OIDC_ISSUER"),
])
def test_incomplete_or_insecure_single_sign_on_settings_are_refused(tmp_path: Path, env: dict, needle: str) -> None:
    with pytest.raises(SettingsError, match=needle):
        Settings.from_env({"AICODE_DATA_DIR": str(tmp_path), **env})
