"""Bad input is a 4xx with a detail that says what was wrong, never a 500: NUL characters, integers
beyond bigint, JSON nested too deeply, a JSON body under another Content-Type, and credentials in a
repository URL that must not be shown back."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from litestar import get
from litestar.exceptions import InternalServerException
from litestar.testing import AsyncTestClient, create_test_client

from aicode.app import _unexpected_error
from aicode.http.input_checks import MAX_JSON_DEPTH, json_problem, text_problem
from aicode.http.urls import redact_userinfo, without_userinfo
from tests.conftest import wait_for_status

NUL_DETAIL = "contains a NUL character (U+0000)"
# An id nothing has. Fixed, not uuid4(): a parameter is part of a test's id, which every pytest-xdist worker
# must compute alike.
NO_SUCH_ID = "00000000-0000-4000-8000-00000000dead"
BIGINT_MAX = 2**63 - 1


def assert_error(response, status: int, *phrases: str) -> str:
    """The answer is the contract's error body with `status`, and its detail holds each phrase."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status_code"] == status
    for phrase in phrases:
        assert phrase in body["detail"], body["detail"]
    assert "Traceback" not in response.text
    return body["detail"]


# -- NUL characters ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "body", "field"), [
    ("POST", "/api/tokens", {"name": "lap\u0000top"}, "name"),
    ("POST", "/api/admin/users", {"username": "eve\u0000", "password": "long-enough"}, "username"),
    ("PUT", "/api/me/credentials/anthropic", {"api_key": "sk-ant-\u0000-key"}, "api_key"),
    ("POST", f"/api/workspaces/{NO_SUCH_ID}/tasks", {"prompt": "fix it\u0000"}, "prompt"),
    ("POST", f"/api/tasks/{NO_SUCH_ID}/messages", {"prompt": "\u0000"}, "prompt"),
])
async def test_a_nul_escaped_in_a_json_body_is_a_400_naming_the_field(
    client: AsyncTestClient, admin_headers: dict[str, str], method: str, path: str, body: dict, field: str
) -> None:
    response = await client.request(method, path, json=body, headers=admin_headers)
    assert_error(response, 400, f"{field}: {NUL_DETAIL}")


async def test_a_nul_in_a_sign_in_is_a_400_before_any_credential_check(client: AsyncTestClient) -> None:
    response = await client.post("/api/auth/login", json={"username": "admin\u0000", "password": "x"})
    assert_error(response, 400, f"username: {NUL_DETAIL}")


async def test_a_nul_deep_in_a_json_body_is_named_by_its_path(
    client: AsyncTestClient, admin_headers: dict[str, str]
) -> None:
    body = {"name": "ws", "repo_url": "/srv/repo", "egress_allow": ["ok.example.com", "bad\u0000.example.com"]}
    response = await client.patch(f"/api/workspaces/{uuid.uuid4()}", json=body, headers=admin_headers)
    assert_error(response, 400, f"egress_allow[1]: {NUL_DETAIL}")


async def test_a_nul_in_a_json_field_name_is_a_400(client: AsyncTestClient, admin_headers: dict[str, str]) -> None:
    response = await client.post("/api/tokens", json={"na\u0000me": "laptop"}, headers=admin_headers)
    assert_error(response, 400, "the field name contains a NUL character")


async def test_a_raw_nul_byte_in_a_json_body_is_a_400(client: AsyncTestClient, admin_headers: dict[str, str]) -> None:
    response = await client.post("/api/tokens", content=b'{"name": "lap\x00top"}',
                                 headers={**admin_headers, "Content-Type": "application/json"})
    assert_error(response, 400, "the body is not valid JSON")


async def test_a_lone_surrogate_in_a_json_body_is_a_400(client: AsyncTestClient, admin_headers: dict[str, str]) -> None:
    # UTF-8 (and so PostgreSQL) cannot hold it; msgspec already refuses it while decoding.
    response = await client.post("/api/tokens", content=b'{"name": "lap\\ud800top"}',
                                 headers={**admin_headers, "Content-Type": "application/json"})
    assert_error(response, 400, "the body is not valid JSON")


@pytest.mark.parametrize("query", ["status=%00", "workspace_id=%00", "status=running&extra=a%00b"])
async def test_a_nul_in_a_query_parameter_is_a_400_naming_it(
    client: AsyncTestClient, admin_headers: dict[str, str], query: str
) -> None:
    response = await client.get(f"/api/tasks?{query}", headers=admin_headers)
    name = query.rpartition("&")[2].partition("=")[0]
    assert_error(response, 400, f"{name}: {NUL_DETAIL}")


@pytest.mark.parametrize("query", ["q=a%00b", "who=%00"])
async def test_a_nul_in_a_page_query_is_a_400_page_not_a_500(
    client: AsyncTestClient, admin_headers: dict[str, str], source_repo: Path, query: str
) -> None:
    # The workspace page's filters went straight into a query: PostgreSQL refused the NUL with a 500.
    created = await client.post("/api/workspaces", json={"name": "proj", "repo_url": str(source_repo)},
                                headers=admin_headers)
    assert created.status_code == 201, created.text
    await wait_for_status(client, admin_headers, created.json()["id"])
    response = await client.get(f"/workspaces/{created.json()['id']}?{query}", headers=admin_headers)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert f"{query.partition('=')[0]}: contains a NUL character" in response.text


async def test_a_nul_in_a_path_parameter_is_a_400(client: AsyncTestClient) -> None:
    # /schema/{path} is a text path parameter (the others are UUIDs, which a NUL cannot match: 404).
    response = await client.get("/schema/open%00api.json")
    assert_error(response, 400, f"path: {NUL_DETAIL}")


async def test_a_nul_in_a_form_field_is_a_400(client: AsyncTestClient, admin_headers: dict[str, str]) -> None:
    response = await client.post("/settings/tokens", data={"name": "lap\x00top"}, headers=admin_headers)
    assert response.status_code == 400, response.text
    assert "name: contains a NUL character" in response.text


# -- integers beyond bigint ---------------------------------------------------------------------------


@pytest.mark.parametrize(("query", "name"), [
    (f"after={BIGINT_MAX + 1}", "after"),
    ("after=99999999999999999999999999", "after"),
    (f"before={BIGINT_MAX + 1}", "before"),
    (f"last={BIGINT_MAX + 1}", "last"),
    (f"limit={BIGINT_MAX + 1}", "limit"),
])
async def test_an_event_query_beyond_bigint_is_a_400_naming_it(
    client: AsyncTestClient, admin_headers: dict[str, str], query: str, name: str
) -> None:
    response = await client.get(f"/api/tasks/{uuid.uuid4()}/events?{query}", headers=admin_headers)
    assert_error(response, 400, f"{name}: Expected `int` <=")


async def test_the_largest_bigint_is_accepted_as_after(client: AsyncTestClient, admin_headers: dict[str, str]) -> None:
    response = await client.get(f"/api/tasks/{uuid.uuid4()}/events?after={BIGINT_MAX}", headers=admin_headers)
    assert_error(response, 404, "no task")


async def test_a_task_list_limit_beyond_bigint_is_a_400(client: AsyncTestClient, admin_headers: dict[str, str]) -> None:
    response = await client.get(f"/api/tasks?limit={10**30}", headers=admin_headers)
    assert_error(response, 400, "limit: Expected `int` <= 500")


async def test_a_last_event_id_beyond_bigint_is_a_400(client: AsyncTestClient, admin_headers: dict[str, str]) -> None:
    headers = {**admin_headers, "Accept": "text/event-stream", "Last-Event-ID": str(10**30)}
    response = await client.get(f"/api/tasks/{uuid.uuid4()}/events", headers=headers)
    assert_error(response, 400, "Last-Event-ID: integer out of range")


@pytest.mark.parametrize(("body", "field"), [
    ({"prompt": "go", "max_turns": 2**64}, "max_turns"),
    ({"prompt": "go", "timeout_s": -(2**63) - 1}, "timeout_s"),
])
async def test_a_json_integer_beyond_bigint_is_a_400_naming_the_field(
    client: AsyncTestClient, admin_headers: dict[str, str], body: dict, field: str
) -> None:
    response = await client.post(f"/api/workspaces/{uuid.uuid4()}/tasks", json=body, headers=admin_headers)
    assert_error(response, 400, f"{field}: integer out of range")


async def test_a_nested_integer_beyond_bigint_is_named_by_its_path(
    client: AsyncTestClient, admin_headers: dict[str, str]
) -> None:
    response = await client.patch(f"/api/workspaces/{uuid.uuid4()}", json={"limits": {"memory_mb": 10**20}},
                                  headers=admin_headers)
    assert_error(response, 400, "limits.memory_mb: integer out of range")


# -- nesting ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 100_000])
async def test_json_nested_too_deeply_is_a_400(client: AsyncTestClient, admin_headers: dict[str, str],
                                               depth: int) -> None:
    body = b"[" * depth + b"]" * depth
    response = await client.post("/api/tokens", content=body,
                                 headers={**admin_headers, "Content-Type": "application/json"})
    assert_error(response, 400, f"nested deeper than {MAX_JSON_DEPTH} levels")


def test_json_at_the_nesting_bound_passes_and_one_level_more_does_not() -> None:
    def nested(levels: int) -> object:
        value: object = "leaf"
        for _ in range(levels):
            value = [value]
        return value

    assert json_problem(nested(MAX_JSON_DEPTH)) is None
    assert json_problem({"a": nested(MAX_JSON_DEPTH - 1)}) is None
    assert json_problem({"a": nested(MAX_JSON_DEPTH)}) == f"a: nested deeper than {MAX_JSON_DEPTH} levels"


def test_text_checks_accept_ordinary_unicode_and_refuse_what_postgresql_cannot_store() -> None:
    assert text_problem("héllo — 你好 🚀 \t\n") is None
    assert "NUL" in (text_problem("a\x00b") or "")
    assert "lone surrogate" in (text_problem("a\ud800b") or "")


# -- Content-Type ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_a_json_body_under_another_content_type_is_a_415(
    client: AsyncTestClient, admin_headers: dict[str, str], content_type: str | None
) -> None:
    headers = dict(admin_headers)
    if content_type:
        headers["Content-Type"] = content_type
    response = await client.post("/api/tokens", content=b'{"name": "laptop"}', headers=headers)
    said = f"this request said '{content_type}'" if content_type else "this request had no Content-Type"
    assert_error(response, 415, "Content-Type: application/json", said)


async def test_json_with_a_charset_or_a_json_suffix_type_is_accepted(
    client: AsyncTestClient, admin_headers: dict[str, str]
) -> None:
    for name, content_type in (("one", "application/json; charset=utf-8"), ("two", "application/merge-patch+json")):
        response = await client.post("/api/tokens", content=f'{{"name": "{name}"}}'.encode(),
                                     headers={**admin_headers, "Content-Type": content_type})
        assert response.status_code == 201, response.text


async def test_a_request_without_credentials_gets_its_401_before_the_body_is_judged(client: AsyncTestClient) -> None:
    response = await client.post("/api/tokens", content=b"not json", headers={"Content-Type": "text/plain"})
    assert response.status_code == 401, response.text


# -- credentials in repository URLs ----------------------------------------------------------------------


@pytest.mark.parametrize(("url", "shown"), [
    ("https://user:tok3n@example.com/org/repo.git", "https://example.com/org/repo.git"),
    ("https://tok3n@example.com:8443/repo", "https://example.com:8443/repo"),
    ("https://u:p@ss-tok3n@example.com/r", "https://example.com/r"),
    ("tok3n@example.com/repo", "example.com/repo"),
    ("/srv/git/repo@2", "/srv/git/repo@2"),
    ("https://example.com/a@b", "https://example.com/a@b"),
])
def test_without_userinfo_drops_only_the_credentials(url: str, shown: str) -> None:
    assert without_userinfo(url) == shown


def test_redact_userinfo_cleans_every_url_in_a_message() -> None:
    message = "cloning 'https://x:tok3n@example.com/r.git' failed; also ssh://git:tok3n@host/x"
    assert redact_userinfo(message) == "cloning 'https://example.com/r.git' failed; also ssh://host/x"


@pytest.mark.parametrize("repo_url", [
    "https://user:tok3n@example.com/org/repo.git",  # refused for the name: the URL is shown back
    "https://user:tok3n@/no-host",  # refused for the URL itself: the message quotes it
    "tok3n@example.com/repo",  # neither a URL nor a path: the message quotes it
])
async def test_the_workspace_form_never_shows_a_credential_from_the_url(
    client: AsyncTestClient, admin_headers: dict[str, str], repo_url: str
) -> None:
    name = "bad name!" if repo_url.startswith("https://user:tok3n@example.com") else "fine"
    response = await client.post("/workspaces", data={"name": name, "repo_url": repo_url}, headers=admin_headers)
    assert response.status_code == 400, response.text
    assert "tok3n" not in response.text
    assert without_userinfo(repo_url) in response.text


async def test_the_api_error_never_echoes_a_credential_from_the_url(
    client: AsyncTestClient, admin_headers: dict[str, str]
) -> None:
    response = await client.post("/api/workspaces", json={"name": "fine", "repo_url": "https://user:tok3n@/no-host"},
                                 headers=admin_headers)
    detail = assert_error(response, 400, "has no host")
    assert "tok3n" not in detail


# -- found by fuzzing -------------------------------------------------------------------------------------


async def test_options_on_an_admin_route_is_not_a_500(client: AsyncTestClient, admin_headers: dict[str, str]) -> None:
    response = await client.options("/api/admin/users", headers=admin_headers)
    assert response.status_code < 500, response.text


def test_a_framework_500_tells_no_internals() -> None:
    # An OPTIONS bug once put "'user' is not defined in scope, install an AuthMiddleware…" in the body.
    @get("/boom", sync_to_thread=False)
    def boom() -> None:
        raise InternalServerException("the internals: 'user' is not defined in scope")

    with create_test_client([boom], exception_handlers={Exception: _unexpected_error}) as test_client:
        response = test_client.get("/boom")
    assert response.status_code == 500
    assert response.json() == {"status_code": 500, "detail": "internal server error (the server log has the details)"}
