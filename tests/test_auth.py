from __future__ import annotations

import base64
import json
import logging
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import jwt
import pytest
from litestar.testing import AsyncTestClient

from aicode.crypto import jwt_signing_key
from aicode.settings import Settings
from tests.conftest import ADMIN, login


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _signed(settings: Settings, claims: dict, algorithm: str = "HS256") -> str:
    assert settings.secret_key is not None
    return jwt.encode(claims, jwt_signing_key(settings.secret_key), algorithm=algorithm)


async def _admin_id(client: AsyncTestClient, headers: dict[str, str]) -> str:
    return (await client.get("/api/me", headers=headers)).json()["id"]


# -- login and JWTs ------------------------------------------------------------------------------


async def test_login_returns_a_bearer_jwt_that_identifies_the_user(client: AsyncTestClient) -> None:
    response = await client.post("/api/auth/login", json={"username": "admin", "password": ADMIN[1]})
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert datetime.fromisoformat(body["expires_at"]) > datetime.now(UTC)
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["jti"] and claims["exp"] and claims["sub"]
    me = await client.get("/api/me", headers=_bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json()["username"] == "admin"
    assert me.json()["admin"] is True


async def test_each_login_gets_a_unique_token_id(client: AsyncTestClient) -> None:
    tokens = [(await login(client, *ADMIN))["Authorization"].split()[1] for _ in range(2)]
    ids = {jwt.decode(t, options={"verify_signature": False})["jti"] for t in tokens}
    assert len(ids) == 2


async def test_username_is_matched_without_regard_to_case(client: AsyncTestClient) -> None:
    response = await client.post("/api/auth/login", json={"username": "ADMIN", "password": ADMIN[1]})
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("username", "password"), [("admin", "wrong-password"), ("nobody", "whatever-password")]
)
async def test_wrong_credentials_answer_401_and_are_logged_without_the_password(
    client: AsyncTestClient, caplog: pytest.LogCaptureFixture, username: str, password: str
) -> None:
    with caplog.at_level(logging.INFO):
        response = await client.post("/api/auth/login", json={"username": username, "password": password})
    assert response.status_code == 401
    assert response.json() == {"status_code": 401, "detail": "wrong username or password"}
    assert "auth.login_failed" in caplog.text
    assert password not in caplog.text


async def test_requests_without_credentials_answer_401(client: AsyncTestClient) -> None:
    response = await client.get("/api/me")
    assert response.status_code == 401
    assert "Authorization: Bearer" in response.json()["detail"]


async def test_an_expired_jwt_is_refused(client: AsyncTestClient, settings: Settings, admin_headers) -> None:
    past = datetime.now(UTC) - timedelta(hours=1)
    token = _signed(settings, {"sub": await _admin_id(client, admin_headers), "jti": uuid4().hex,
                               "iat": int((past - timedelta(hours=1)).timestamp()), "exp": int(past.timestamp())})
    response = await client.get("/api/me", headers=_bearer(token))
    assert response.status_code == 401


async def test_a_tampered_jwt_is_refused(client: AsyncTestClient, admin_headers) -> None:
    token = admin_headers["Authorization"].split()[1]
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = str(uuid4())
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    response = await client.get("/api/me", headers=_bearer(f"{header}.{forged}.{signature}"))
    assert response.status_code == 401


async def test_a_jwt_signed_with_another_key_is_refused(client: AsyncTestClient, admin_headers) -> None:
    claims = {"sub": await _admin_id(client, admin_headers), "jti": uuid4().hex,
              "exp": int((datetime.now(UTC) + timedelta(hours=1)).timestamp())}
    token = jwt.encode(claims, "not-the-server-key-but-long-enough-for-hs256", algorithm="HS256")
    assert (await client.get("/api/me", headers=_bearer(token))).status_code == 401


async def test_an_unsigned_alg_none_jwt_is_refused(client: AsyncTestClient, admin_headers) -> None:
    claims = {"sub": await _admin_id(client, admin_headers), "jti": uuid4().hex,
              "exp": int((datetime.now(UTC) + timedelta(hours=1)).timestamp())}
    token = jwt.encode(claims, key=None, algorithm="none")
    assert token.endswith(".")
    assert (await client.get("/api/me", headers=_bearer(token))).status_code == 401


async def test_a_jwt_for_a_user_that_does_not_exist_is_refused(client: AsyncTestClient, settings: Settings) -> None:
    claims = {"sub": str(uuid4()), "jti": uuid4().hex,
              "exp": int((datetime.now(UTC) + timedelta(hours=1)).timestamp())}
    assert (await client.get("/api/me", headers=_bearer(_signed(settings, claims)))).status_code == 401


async def test_a_refused_jwt_is_logged_without_the_token(
    client: AsyncTestClient, admin_headers, caplog: pytest.LogCaptureFixture
) -> None:
    token = admin_headers["Authorization"].split()[1] + "x"
    with caplog.at_level(logging.INFO):
        assert (await client.get("/api/me", headers=_bearer(token))).status_code == 401
    assert "auth.rejected" in caplog.text
    assert token not in caplog.text
    assert token[:-1] not in caplog.text


async def test_logout_revokes_the_jwt(client: AsyncTestClient, admin_headers) -> None:
    assert (await client.post("/api/auth/logout", headers=admin_headers)).status_code == 204
    assert (await client.get("/api/me", headers=admin_headers)).status_code == 401


async def test_a_disabled_user_can_no_longer_sign_in_or_use_a_jwt(
    client: AsyncTestClient, admin_headers, alice
) -> None:
    users = (await client.get("/api/admin/users", headers=admin_headers)).json()
    alice_id = next(u["id"] for u in users if u["username"] == "alice")
    response = await client.patch(f"/api/admin/users/{alice_id}", json={"disabled": True}, headers=admin_headers)
    assert response.status_code == 200
    assert response.json()["disabled"] is True
    assert (await client.get("/api/me", headers=alice)).status_code == 401
    refused = await client.post("/api/auth/login", json={"username": "alice", "password": "alice-password"})
    assert refused.status_code == 401


# -- API tokens ----------------------------------------------------------------------------------


async def test_an_api_token_is_shown_once_and_works_as_a_bearer(client: AsyncTestClient, alice) -> None:
    created = await client.post("/api/tokens", json={"name": "laptop"}, headers=alice)
    assert created.status_code == 201
    token = created.json()["token"]
    assert token.startswith("aic_") and len(token) > 40
    listed = await client.get("/api/tokens", headers=alice)
    assert [t["name"] for t in listed.json()] == ["laptop"]
    assert token not in listed.text
    assert listed.json()[0]["last_used_at"] is None
    me = await client.get("/api/me", headers=_bearer(token))
    assert me.status_code == 200 and me.json()["username"] == "alice"
    listed = await client.get("/api/tokens", headers=alice)
    assert listed.json()[0]["last_used_at"] is not None


async def test_api_tokens_are_stored_only_as_hashes(client: AsyncTestClient, alice, database_url: str) -> None:
    import asyncpg

    token = (await client.post("/api/tokens", json={"name": "ci"}, headers=alice)).json()["token"]
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT * FROM api_tokens")
    finally:
        await conn.close()
    assert len(rows) == 1
    assert token not in repr([dict(r) for r in rows])
    assert token.encode() not in rows[0]["token_hash"]


async def test_a_revoked_api_token_is_refused(client: AsyncTestClient, alice) -> None:
    created = (await client.post("/api/tokens", json={"name": "old"}, headers=alice)).json()
    assert (await client.delete(f"/api/tokens/{created['id']}", headers=alice)).status_code == 204
    assert (await client.get("/api/me", headers=_bearer(created["token"]))).status_code == 401
    assert (await client.get("/api/tokens", headers=alice)).json() == []


async def test_logout_with_an_api_token_revokes_it(client: AsyncTestClient, alice) -> None:
    token = (await client.post("/api/tokens", json={"name": "script"}, headers=alice)).json()["token"]
    assert (await client.post("/api/auth/logout", headers=_bearer(token))).status_code == 204
    assert (await client.get("/api/me", headers=_bearer(token))).status_code == 401


async def test_an_unknown_api_token_is_refused(client: AsyncTestClient) -> None:
    response = await client.get("/api/me", headers=_bearer("aic_" + "x" * 43))
    assert response.status_code == 401
    assert "API token" in response.json()["detail"]


async def test_a_duplicate_token_name_answers_409(client: AsyncTestClient, alice) -> None:
    assert (await client.post("/api/tokens", json={"name": "dup"}, headers=alice)).status_code == 201
    response = await client.post("/api/tokens", json={"name": "dup"}, headers=alice)
    assert response.status_code == 409
    assert "dup" in response.json()["detail"]


async def test_one_user_cannot_revoke_another_users_token(client: AsyncTestClient, alice, bob) -> None:
    created = (await client.post("/api/tokens", json={"name": "mine"}, headers=alice)).json()
    assert (await client.delete(f"/api/tokens/{created['id']}", headers=bob)).status_code == 404
    assert (await client.get("/api/me", headers=_bearer(created["token"]))).status_code == 200


async def test_a_disabled_users_api_token_is_refused(client: AsyncTestClient, admin_headers, alice) -> None:
    token = (await client.post("/api/tokens", json={"name": "t"}, headers=alice)).json()["token"]
    alice_id = (await client.get("/api/me", headers=alice)).json()["id"]
    await client.patch(f"/api/admin/users/{alice_id}", json={"disabled": True}, headers=admin_headers)
    assert (await client.get("/api/me", headers=_bearer(token))).status_code == 401


# -- users and admin -----------------------------------------------------------------------------


async def test_members_cannot_use_admin_endpoints(client: AsyncTestClient, alice) -> None:
    response = await client.post("/api/admin/users", json={"username": "eve", "password": "eve-password"},
                                 headers=alice)
    assert response.status_code == 403
    assert (await client.get("/api/admin/users", headers=alice)).status_code == 403


async def test_a_duplicate_username_answers_409_regardless_of_case(client: AsyncTestClient, admin_headers) -> None:
    body = {"username": "Dave", "password": "dave-password"}
    assert (await client.post("/api/admin/users", json=body, headers=admin_headers)).status_code == 201
    response = await client.post("/api/admin/users", json={**body, "username": "dave"}, headers=admin_headers)
    assert response.status_code == 409
    users = (await client.get("/api/admin/users", headers=admin_headers)).json()
    assert [u["username"] for u in users].count("Dave") == 1


async def test_an_admin_can_reset_a_password(client: AsyncTestClient, admin_headers, alice) -> None:
    alice_id = (await client.get("/api/me", headers=alice)).json()["id"]
    response = await client.patch(f"/api/admin/users/{alice_id}", json={"password": "brand-new-password"},
                                  headers=admin_headers)
    assert response.status_code == 200
    assert (await client.post("/api/auth/login", json={"username": "alice", "password": "alice-password"})
            ).status_code == 401
    await login(client, "alice", "brand-new-password")


async def test_an_admin_cannot_disable_themselves(client: AsyncTestClient, admin_headers) -> None:
    admin_id = await _admin_id(client, admin_headers)
    response = await client.patch(f"/api/admin/users/{admin_id}", json={"disabled": True}, headers=admin_headers)
    assert response.status_code == 403
    assert (await client.get("/api/me", headers=admin_headers)).status_code == 200


async def test_patching_an_unknown_user_answers_404(client: AsyncTestClient, admin_headers) -> None:
    response = await client.patch(f"/api/admin/users/{uuid4()}", json={"admin": True}, headers=admin_headers)
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"password": "long-enough"}, "username"),
        ({"username": "x y", "password": "long-enough"}, "username"),
        ({"username": "short", "password": "short"}, "password"),
        ({"username": 5, "password": "long-enough"}, "username"),
        ({"username": "ok", "password": "long-enough", "role": "root"}, "role"),
    ],
)
async def test_invalid_user_bodies_answer_400_saying_what_is_wrong(
    client: AsyncTestClient, admin_headers, body: dict, needle: str
) -> None:
    response = await client.post("/api/admin/users", json=body, headers=admin_headers)
    assert response.status_code == 400
    assert needle in response.text
    assert "Traceback" not in response.text
    users = (await client.get("/api/admin/users", headers=admin_headers)).json()
    assert [u["username"] for u in users] == ["admin"]


async def test_malformed_json_answers_400(client: AsyncTestClient) -> None:
    response = await client.post("/api/auth/login", content=b'{"username": ',
                                 headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert set(response.json()) >= {"status_code", "detail"}


async def test_an_oversize_body_answers_413(client: AsyncTestClient) -> None:
    payload = json.dumps({"username": "admin", "password": "x" * (2 * 1024 * 1024)})
    response = await client.post("/api/auth/login", content=payload, headers={"Content-Type": "application/json"})
    assert response.status_code == 413


# -- the first admin -----------------------------------------------------------------------------


@pytest.fixture
def settings_without_admin(settings: Settings) -> Settings:
    import dataclasses

    return dataclasses.replace(settings, bootstrap_admin=None)


async def test_with_no_users_a_one_time_setup_code_creates_the_first_admin(settings_without_admin: Settings) -> None:
    from aicode.app import create_app

    app = create_app(settings_without_admin)
    async with AsyncTestClient(app=app) as client:
        code = app.state.auth_service.setup_code
        assert code
        wrong = await client.post("/api/auth/setup",
                                  json={"setup_code": "nope", "username": "root", "password": "root-password"})
        assert wrong.status_code == 401
        created = await client.post("/api/auth/setup",
                                    json={"setup_code": code, "username": "root", "password": "root-password"})
        assert created.status_code == 201
        assert created.json()["admin"] is True
        again = await client.post("/api/auth/setup",
                                  json={"setup_code": code, "username": "root2", "password": "root-password"})
        assert again.status_code == 401
        await login(client, "root", "root-password")


async def test_the_bootstrap_admin_is_created_only_when_there_are_no_users(
    settings: Settings, client: AsyncTestClient, admin_headers
) -> None:
    import dataclasses

    from aicode.app import create_app

    other = dataclasses.replace(settings, bootstrap_admin=("second", "second-password"))
    async with AsyncTestClient(app=create_app(other)) as second:
        refused = await second.post("/api/auth/login", json={"username": "second", "password": "second-password"})
        assert refused.status_code == 401
    users = (await client.get("/api/admin/users", headers=admin_headers)).json()
    assert [u["username"] for u in users] == ["admin"]
