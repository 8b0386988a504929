"""Every HTTP answer carries the security headers: API answers and errors (401, 404, 405, 400, 415),
the OpenAPI document, static files, pages (which keep their own CSP) and live SSE streams."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from litestar.testing import AsyncTestClient

from aicode.http.security_headers import API_CONTENT_SECURITY_POLICY
from aicode.web.templating import CONTENT_SECURITY_POLICY as PAGE_CONTENT_SECURITY_POLICY
from tests.browser_support import LiveServer
from tests.conftest import ADMIN

pytest_plugins = ["tests.browser_fixtures"]  # `live`: a server under uvicorn

# An id nothing has. Fixed, not uuid4(): a parameter is part of a test's id, which every pytest-xdist worker
# must compute alike.
NO_SUCH_ID = "00000000-0000-4000-8000-00000000dead"

BASELINE = {"x-content-type-options": "nosniff", "referrer-policy": "same-origin", "x-frame-options": "DENY"}


def assert_security_headers(response: httpx.Response, csp: str) -> None:
    for name, value in BASELINE.items():
        assert response.headers.get(name) == value, (name, response.status_code, dict(response.headers))
    assert response.headers.get("content-security-policy") == csp, dict(response.headers)
    assert len(response.headers.get_list("content-security-policy")) == 1


@pytest.mark.parametrize(("method", "path", "signed_in", "status"), [
    ("GET", "/healthz", False, 200),
    ("GET", "/api/me", True, 200),
    ("GET", "/api/me", False, 401),
    ("GET", f"/api/tasks/{NO_SUCH_ID}", True, 404),
    ("GET", "/no/such/path", True, 404),
    ("DELETE", "/api/me", True, 405),
    ("GET", "/api/tasks?limit=0", True, 400),
    ("GET", "/api/tasks?status=%00", True, 400),
    ("GET", "/schema", False, 200),
    ("GET", "/schema/openapi.json", False, 200),
    ("GET", "/static/app.css", False, 200),
])
async def test_api_answers_and_errors_carry_the_security_headers_and_a_closed_csp(
    client: AsyncTestClient, admin_headers: dict[str, str], method: str, path: str, signed_in: bool, status: int
) -> None:
    response = await client.request(method, path, headers=admin_headers if signed_in else {})
    assert response.status_code == status, response.text
    assert_security_headers(response, API_CONTENT_SECURITY_POLICY)


async def test_a_415_carries_the_security_headers(client: AsyncTestClient, admin_headers: dict[str, str]) -> None:
    response = await client.post("/api/tokens", content=b'{"name": "x"}', headers={**admin_headers,
                                                                                  "Content-Type": "text/plain"})
    assert response.status_code == 415, response.text
    assert_security_headers(response, API_CONTENT_SECURITY_POLICY)


def test_the_api_csp_lets_nothing_load_run_or_frame() -> None:
    assert "default-src 'none'" in API_CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in API_CONTENT_SECURITY_POLICY


@pytest.mark.parametrize(("path", "status"), [("/login", 200), ("/", 200), (f"/workspaces/{NO_SUCH_ID}", 404)])
async def test_pages_keep_their_own_csp_with_the_other_headers(
    client: AsyncTestClient, admin_headers: dict[str, str], path: str, status: int
) -> None:
    response = await client.get(path, headers=admin_headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert_security_headers(response, PAGE_CONTENT_SECURITY_POLICY)


async def test_a_redirect_to_sign_in_carries_the_security_headers(client: AsyncTestClient) -> None:
    response = await client.get("/settings", follow_redirects=False)
    assert response.status_code == 303, response.text
    assert_security_headers(response, API_CONTENT_SECURITY_POLICY)


# -- a live SSE stream, served by uvicorn (the test client would buffer the whole answer) --------------------


async def _ready_workspace(api: httpx.AsyncClient, headers: dict[str, str], repo: str) -> str:
    created = await api.post("/api/workspaces", json={"name": "proj", "repo_url": repo}, headers=headers)
    assert created.status_code == 201, created.text
    async with asyncio.timeout(20):
        while (await api.get(f"/api/workspaces/{created.json()['id']}", headers=headers)).json()["status"] == "cloning":
            await asyncio.sleep(0.05)
    return created.json()["id"]


@pytest.mark.timeout(120)
@pytest.mark.serial  # the first event is timed to 3 s
async def test_a_live_sse_stream_carries_the_headers_and_is_not_buffered(live: LiveServer, source_repo) -> None:
    async with httpx.AsyncClient(base_url=live.url, timeout=30) as api:
        login = await api.post("/api/auth/login", json={"username": ADMIN[0], "password": ADMIN[1]})
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        stored = await api.put("/api/me/credentials/anthropic", json={"api_key": "sk-test-admin-key"}, headers=headers)
        assert stored.status_code == 204, stored.text
        workspace_id = await _ready_workspace(api, headers, str(source_repo))
        task = await api.post(f"/api/workspaces/{workspace_id}/tasks", json={"prompt": "@sleep 4\n@say done"},
                              headers=headers)
        assert task.status_code == 202, task.text
        started = time.monotonic()
        async with api.stream("GET", f"/api/tasks/{task.json()['id']}/events",
                              headers={**headers, "Accept": "text/event-stream"}) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            assert_security_headers(stream, API_CONTENT_SECURITY_POLICY)
            async for line in stream.aiter_lines():
                if line.startswith("event:"):
                    break
            first_event_after = time.monotonic() - started
        # The task sleeps 4 s before it can end: its first event came while the stream was still live.
        assert first_event_after < 3, first_event_after
