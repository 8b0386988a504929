"""Browser sessions without a browser: the session cookie, CSRF, page redirects and the events tail."""

from __future__ import annotations

import re
import uuid

import pytest
from litestar.testing import AsyncTestClient

from aicode.app import create_app
from aicode.settings import Settings
from tests.conftest import ADMIN, make_user

_TOKEN_FIELD = re.compile(r'name="_csrf_token" value="([^"]+)"')


async def sign_in_by_form(client: AsyncTestClient, username: str, password: str) -> str:
    """Sign in through the login page as a browser does; answers the page's CSRF token."""
    page = await client.get("/login")
    token = _TOKEN_FIELD.search(page.text)
    assert token is not None, page.text
    response = await client.post("/login", data={"username": username, "password": password,
                                                  "_csrf_token": token.group(1)}, follow_redirects=False)
    assert response.status_code == 303, response.text
    return token.group(1)


async def test_signing_in_by_form_sets_a_session_cookie_that_the_api_accepts(client: AsyncTestClient) -> None:
    await sign_in_by_form(client, *ADMIN)
    assert "aicode_session" in client.cookies
    me = await client.get("/api/me")
    assert me.status_code == 200 and me.json()["username"] == ADMIN[0]


async def test_the_session_cookie_is_httponly_lax_and_secure_over_https(settings: Settings) -> None:
    async with AsyncTestClient(app=create_app(settings), base_url="https://testserver.local") as client:
        page = await client.get("/login")
        token = _TOKEN_FIELD.search(page.text).group(1)
        response = await client.post("/login", data={"username": ADMIN[0], "password": ADMIN[1],
                                                      "_csrf_token": token}, follow_redirects=False)
    cookie = next(v for k, v in response.headers.multi_items() if k == "set-cookie" and "aicode_session" in v)
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" in cookie


async def test_a_cookie_request_that_changes_state_needs_the_csrf_token(client: AsyncTestClient) -> None:
    csrf = await sign_in_by_form(client, *ADMIN)
    refused = await client.post("/api/tokens", json={"name": "forged"})
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["detail"]
    accepted = await client.post("/api/tokens", json={"name": "mine"}, headers={"X-CSRFToken": csrf})
    assert accepted.status_code == 201, accepted.text
    form_without_token = await client.post("/settings/tokens", data={"name": "forged"})
    assert form_without_token.status_code == 403
    assert "text/html" in form_without_token.headers["content-type"]


async def test_requests_with_an_authorization_header_need_no_csrf_token(client: AsyncTestClient,
                                                                         admin_headers) -> None:
    created = await client.post("/api/tokens", json={"name": "script"}, headers=admin_headers)
    assert created.status_code == 201
    token = created.json()["token"]
    response = await client.post("/api/tokens", json={"name": "second"}, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 201


async def test_an_api_token_is_not_accepted_as_a_session_cookie(client: AsyncTestClient, admin_headers) -> None:
    token = (await client.post("/api/tokens", json={"name": "t"}, headers=admin_headers)).json()["token"]
    response = await client.get("/api/me", headers={"Cookie": f"aicode_session={token}"})
    assert response.status_code == 401


async def test_a_signed_out_visitor_is_redirected_to_sign_in_and_the_api_answers_401(
    client: AsyncTestClient,
) -> None:
    for path in ("/", "/workspaces", "/settings", "/admin"):
        response = await client.get(path, follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"] == f"/login?next={path}"
    api = await client.get("/api/workspaces")
    assert api.status_code == 401 and api.json()["status_code"] == 401


async def test_sign_in_returns_only_to_a_path_on_this_site(client: AsyncTestClient) -> None:
    page = await client.get("/login", params={"next": "//evil.example/steal"})
    assert 'name="next" value="/"' in page.text


async def test_pages_carry_a_content_security_policy_without_inline_scripts(client: AsyncTestClient) -> None:
    await sign_in_by_form(client, *ADMIN)
    for path in ("/", "/login", "/workspaces", "/settings", "/admin"):
        response = await client.get(path)
        assert response.status_code == 200, path
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert "<script>" not in response.text and " on" + "click=" not in response.text


async def test_a_member_is_refused_the_admin_page(client: AsyncTestClient, admin_headers) -> None:
    await make_user(client, admin_headers, "carol")
    await sign_in_by_form(client, "carol", "carol-password")
    response = await client.get("/admin")
    assert response.status_code == 403
    assert "text/html" in response.headers["content-type"]


async def test_a_cross_site_websocket_with_the_session_cookie_is_refused(client: AsyncTestClient) -> None:
    from litestar.exceptions import WebSocketDisconnect

    await sign_in_by_form(client, *ADMIN)
    task_id = "6f1c0d51-0c4e-4a7e-9a43-0d6bbf0a9d11"
    with pytest.raises(WebSocketDisconnect):
        with await client.websocket_connect(f"/ws/tasks/{task_id}", headers={"Origin": "https://evil.example"}):
            pass
    with await client.websocket_connect(f"/ws/tasks/{task_id}", headers={"Origin": "http://testserver.local"}) as ws:
        assert ws.receive_json(timeout=10)["status_code"] == 404  # authenticated; the task just does not exist


async def test_an_unknown_url_is_an_html_page_for_browsers_and_json_for_api_clients(client, admin_headers) -> None:
    browser = await client.get("/no/such/page", headers={"Accept": "text/html,application/xhtml+xml"})
    assert browser.status_code == 404 and browser.headers["content-type"].startswith("text/html")
    assert "Not found" in browser.text and '"status_code"' not in browser.text
    signed_in = await client.get("/no/such/page", headers={**admin_headers, "Accept": "text/html"})
    assert signed_in.status_code == 404 and "Not found" in signed_in.text
    api = await client.get("/api/no/such/thing", headers={"Accept": "text/html"})
    assert api.status_code == 404 and api.json()["status_code"] == 404
    plain = await client.get("/no/such/page", headers={"Accept": "application/json"})
    assert plain.status_code == 404 and plain.json()["status_code"] == 404


@pytest.mark.parametrize("path", ["/nope", f"/tasks/{uuid.uuid4()}", f"/workspaces/{uuid.uuid4()}"])
async def test_a_missing_page_is_an_html_404_with_a_way_home_and_json_when_json_is_asked(
    client: AsyncTestClient, admin_headers: dict[str, str], path: str
) -> None:
    page = await client.get(path, headers={**admin_headers, "Accept": "text/html,application/xhtml+xml"})
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "<title>Not found · aicode</title>" in page.text and 'href="/"' in page.text
    assert re.search(r"<h1>Not found</h1>\s*<p>\S[^<]*</p>", page.text), page.text  # what was not found
    answer = await client.get(path, headers={**admin_headers, "Accept": "application/json"})
    assert answer.status_code == 404 and answer.headers["content-type"].startswith("application/json")
    assert answer.json()["status_code"] == 404 and answer.json()["detail"]


async def test_a_refused_page_is_an_html_403_and_json_when_json_is_asked(client: AsyncTestClient,
                                                                          admin_headers) -> None:
    await make_user(client, admin_headers, "carol")
    await sign_in_by_form(client, "carol", "carol-password")
    page = await client.get("/admin", headers={"Accept": "text/html"})
    assert page.status_code == 403 and "<title>Not allowed · aicode</title>" in page.text and 'href="/"' in page.text
    answer = await client.get("/admin", headers={"Accept": "application/json"})
    assert answer.status_code == 403 and answer.json()["status_code"] == 403
