"""The OpenAPI surface: the document at /schema and /schema/openapi.json, nothing under /schema (nor any
page) that loads from another host, and the error answers routes really give, with the error body."""

from __future__ import annotations

import re
import uuid

import pytest
from litestar.testing import AsyncTestClient

from aicode.resources import resource_dir

# A script, style, image or frame fetched from elsewhere: an absolute or protocol-relative URL in src/href,
# or a CSS url()/@import.
_EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?(?:https?:)?//|@import""",
                       re.IGNORECASE)


@pytest.fixture
async def document(client: AsyncTestClient) -> dict:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200, response.text
    return response.json()


def responses(document: dict, method: str, path: str) -> dict:
    return document["paths"][path][method.lower()]["responses"]


async def test_schema_answers_the_openapi_document_itself(client: AsyncTestClient, document: dict) -> None:
    response = await client.get("/schema")
    assert response.status_code == 200, response.text
    assert response.json() == document
    assert document["openapi"].startswith("3.")
    assert "/api/tasks/{task_id}" in document["paths"]


@pytest.mark.parametrize("path", ["/schema", "/schema/openapi.json", "/schema/swagger", "/schema/redoc",
                                  "/schema/elements", "/schema/rapidoc", "/schema/scalar",
                                  "/schema/oauth2-redirect.html"])
async def test_nothing_under_schema_loads_from_another_host(client: AsyncTestClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code in (200, 404), response.text
    assert not _EXTERNAL.search(response.text), path
    assert "cdn" not in response.text.lower(), path
    if response.status_code == 200:
        assert "html" not in response.headers["content-type"], "an OpenAPI UI came back"


@pytest.mark.parametrize("path", ["/login", "/", "/workspaces", "/settings", "/admin"])
async def test_no_page_loads_from_another_host(client: AsyncTestClient, admin_headers: dict[str, str],
                                               path: str) -> None:
    response = await client.get(path, headers=admin_headers)
    assert response.status_code == 200, response.text
    assert not _EXTERNAL.search(response.text), path


def test_no_template_or_static_file_refers_to_another_host() -> None:
    for folder in ("templates", "static"):
        for file in resource_dir(folder).iterdir():
            if file.suffix in (".html", ".css", ".js"):
                assert not _EXTERNAL.search(file.read_text()), file


@pytest.mark.parametrize(("method", "path", "present", "absent"), [
    ("GET", "/api/me", {400, 401}, {403, 404, 409, 415}),
    ("GET", "/healthz", {400}, {401, 403, 404}),
    ("GET", "/readyz", {503}, {401}),
    ("POST", "/api/auth/login", {400, 401, 415, 429}, {403, 404}),
    ("POST", "/api/tokens", {400, 401, 403, 409, 413, 415}, {404}),
    ("DELETE", "/api/tokens/{token_id}", {401, 403, 404}, {409, 415}),
    ("POST", "/api/admin/users", {400, 401, 403, 409, 415}, {404}),
    ("GET", "/api/admin/users", {401, 403}, {404, 409}),
    ("PATCH", "/api/admin/users/{user_id}", {400, 401, 403, 404, 415}, set()),
    ("GET", "/api/workspaces/{workspace_id}", {401, 403, 404}, {409, 415}),
    ("DELETE", "/api/workspaces/{workspace_id}", {401, 403, 404, 409}, {415}),
    ("POST", "/api/workspaces/{workspace_id}/tasks", {400, 401, 403, 404, 409, 415, 429}, set()),
    ("GET", "/api/tasks", {400, 401}, {404}),
    ("GET", "/api/tasks/{task_id}", {401, 403, 404}, {409}),
    ("GET", "/api/tasks/{task_id}/events", {400, 401, 403, 404}, {415}),
    ("POST", "/api/tasks/{task_id}/cancel", {401, 403, 404, 409}, {415}),
])
def test_routes_document_the_errors_they_give(document: dict, method: str, path: str, present: set[int],
                                              absent: set[int]) -> None:
    documented = {int(status) for status in responses(document, method, path) if int(status) >= 400}
    assert present <= documented, (method, path, sorted(documented))
    assert not absent & documented, (method, path, sorted(documented))


def test_every_error_answer_has_the_error_body(document: dict) -> None:
    error_body = document["components"]["schemas"]["ErrorBody"]
    assert set(error_body["required"]) == {"status_code", "detail"}
    assert error_body["properties"]["status_code"]["type"] == "integer"
    assert error_body["properties"]["detail"]["type"] == "string"
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status, answer in operation["responses"].items():
                if int(status) >= 400:
                    schema = answer["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path, status)
                    assert answer["description"], (method, path, status)


async def test_a_documented_error_is_the_error_the_route_gives(
    client: AsyncTestClient, admin_headers: dict[str, str], alice: dict[str, str], document: dict
) -> None:
    """A sample of real answers: each status is listed for its route, and the body has the documented shape."""
    answers = [
        ("GET", "/api/me", await client.get("/api/me")),
        ("GET", "/api/admin/users", await client.get("/api/admin/users", headers=alice)),
        ("GET", "/api/tasks/{task_id}", await client.get(f"/api/tasks/{uuid.uuid4()}", headers=alice)),
        ("POST", "/api/tokens", await client.post("/api/tokens", json={"name": "twice"}, headers=alice)),
        ("POST", "/api/tokens", await client.post("/api/tokens", json={"name": "twice"}, headers=alice)),
    ]
    statuses = []
    for method, path, response in answers:
        statuses.append(response.status_code)
        if response.status_code >= 400:
            assert str(response.status_code) in responses(document, method, path), (method, path, response.text)
            body = response.json()
            assert body["status_code"] == response.status_code and isinstance(body["detail"], str)
    assert statuses == [401, 403, 404, 201, 409]
