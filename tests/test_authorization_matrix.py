"""The authorization matrix: every route of the app × every kind of caller → the answer the access rule gives.

The routes come from the app's own route table, so a route added without a row here fails
`test_every_route_has_a_row`. Each row names the rule the route follows and how to call it; the
big test then calls every route as an admin, a workspace's owner, editor and viewer, someone who
is no member, an anonymous caller and a disabled user, and compares the answers with the rule.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.exceptions import WebSocketDisconnect
from litestar.routes import HTTPRoute, WebSocketRoute
from litestar.testing import AsyncTestClient

from aicode.app import create_app
from aicode.settings import Settings
from tests.conftest import ADMIN, login, make_user, wait_for_status
from tests.tasks_support import finished, submit, wait_until

pytestmark = pytest.mark.timeout(600)

ROLES = ("admin", "owner", "editor", "viewer", "outsider", "anonymous", "disabled")
# Beside HTTP statuses: allowed (whatever the route then answers), sent to the sign-in page, and
# "whoever asks gets the same answer" (public routes).
OK, LOGIN, SAME = "ok", "login", "same"


def _rule(*, allowed: tuple[str, ...], in_workspace: bool) -> dict[str, Any]:
    """Who is allowed; a member who is not gets 403; in a workspace's routes a non-member gets 404 (as for
    an id that does not exist), elsewhere 403; signed-out callers 401."""
    answers: dict[str, Any] = {"anonymous": 401, "disabled": 401}
    for role in ("admin", "owner", "editor", "viewer", "outsider"):
        answers[role] = OK if role in allowed else (404 if role == "outsider" and in_workspace else 403)
    return answers


PUBLIC = {role: SAME for role in ROLES}
SIGNED_IN = _rule(allowed=("admin", "owner", "editor", "viewer", "outsider"), in_workspace=False)
ADMIN_ONLY = _rule(allowed=("admin",), in_workspace=False)
VIEW = _rule(allowed=("admin", "owner", "editor", "viewer"), in_workspace=True)
RUN = _rule(allowed=("admin", "owner", "editor"), in_workspace=True)
MANAGE = _rule(allowed=("admin", "owner"), in_workspace=True)
SIGNS_OUT = {role: LOGIN for role in ROLES}  # the sign-out page: everyone ends on the sign-in page


def as_page(rule: dict[str, Any]) -> dict[str, Any]:
    """The same rule for a page: signed-out callers are sent to the sign-in page instead of a 401."""
    return {role: LOGIN if role in ("anonymous", "disabled") else answer for role, answer in rule.items()}


@dataclass
class World:
    """Everything the calls need: a shared workspace, its tasks, and each caller's headers."""

    client: AsyncTestClient
    repo: Path
    headers: dict[str, dict[str, str]]
    passwords: dict[str, str]
    workspace: str
    task_view: str  # finished, never touched again: safe to stream
    task_follow: str  # finished, followed up by the calls
    task_busy: str  # running all along: the workspace cannot be deleted while it runs
    zed: str  # a user the member calls add and remove
    zed_id: str
    counter: list[int] = field(default_factory=lambda: [0])

    def unique(self, prefix: str) -> str:
        self.counter[0] += 1
        return f"{prefix}{self.counter[0]}"

    async def fresh_headers(self, role: str) -> dict[str, str]:
        """A login of its own, for calls that sign out."""
        if role in ("anonymous", "disabled"):
            return self.headers[role]
        return await login(self.client, self.username(role), self.passwords[role])

    @staticmethod
    def username(role: str) -> str:
        return {"admin": ADMIN[0], "owner": "alice", "editor": "bob", "viewer": "carol", "outsider": "dave",
                "disabled": "dora"}[role]


Call = Callable[[World, str], Awaitable[tuple[str, str, dict[str, Any]]]]  # (method, path, request kwargs)


def call(method: str, path: str, **kwargs: Any) -> Call:
    async def build(world: World, role: str) -> tuple[str, str, dict[str, Any]]:
        return method, path.format(**vars(world)), {k: (v(world) if callable(v) else v) for k, v in kwargs.items()}

    return build


def owner_first(setup: Callable[[World], Awaitable[None]], inner: Call) -> Call:
    """Run `setup` (as the workspace's owner) before each call, so the call finds what it acts on."""

    async def build(world: World, role: str) -> tuple[str, str, dict[str, Any]]:
        await setup(world)
        return await inner(world, role)

    return build


async def _zed_is_member(world: World) -> None:
    await world.client.put(f"/api/workspaces/{world.workspace}/members/{world.zed}", json={"role": "viewer"},
                           headers=world.headers["owner"])


async def _team_credential(world: World) -> None:
    await world.client.put(f"/api/workspaces/{world.workspace}/credentials/anthropic",
                           json={"api_key": "sk-team-matrix"}, headers=world.headers["owner"])


def owners_comment() -> Call:
    """DELETE of a comment the workspace's owner just wrote on the finished task."""

    async def build(world: World, role: str) -> tuple[str, str, dict[str, Any]]:
        made = await world.client.post(f"/api/tasks/{world.task_view}/comments", json={
            "path": "a.txt", "line": 1, "body": "to delete"}, headers=world.headers["owner"])
        assert made.status_code == 201, made.text
        return "DELETE", f"/api/tasks/{world.task_view}/comments/{made.json()['id']}", {}

    return build


def own_token(path: str) -> Call:
    """A call on one of the caller's own API tokens (a made-up id for callers without any)."""

    async def build(world: World, role: str) -> tuple[str, str, dict[str, Any]]:
        token_id = str(uuid.uuid4())
        if role not in ("anonymous", "disabled"):
            made = await world.client.post("/api/tokens", json={"name": world.unique("t")},
                                           headers=world.headers[role])
            token_id = made.json()["id"]
        return "POST" if "revoke" in path else "DELETE", path.format(token_id=token_id), {}

    return build


def own_credential(method: str, path: str, **kwargs: Any) -> Call:
    """A call on the caller's own stored credential, stored first so removing it finds one."""

    async def build(world: World, role: str) -> tuple[str, str, dict[str, Any]]:
        if role not in ("anonymous", "disabled"):
            await world.client.put("/api/me/credentials/anthropic", json={"api_key": "sk-matrix-own"},
                                   headers=world.headers[role])
        return method, path, kwargs

    return build


_HOOK_URL = "http://127.0.0.1:9/matrix-hook"  # nothing listens: a test send answers at once with its error


def own_hook(method: str, path: str) -> Call:
    """A call on one of the caller's own notification webhooks (a made-up id for callers without any)."""

    async def build(world: World, role: str) -> tuple[str, str, dict[str, Any]]:
        hook_id = str(uuid.uuid4())
        if role not in ("anonymous", "disabled"):
            made = await world.client.post("/api/me/notifications", json={"url": _HOOK_URL},
                                           headers=world.headers[role])
            hook_id = made.json()["id"]
        return method, path.format(hook_id=hook_id), {}

    return build


def workspace_hook(method: str, path: str) -> Call:
    """A call on a notification webhook the workspace's owner just added."""

    async def build(world: World, role: str) -> tuple[str, str, dict[str, Any]]:
        made = await world.client.post(f"/api/workspaces/{world.workspace}/notifications", json={"url": _HOOK_URL},
                                       headers=world.headers["owner"])
        assert made.status_code == 201, made.text
        return method, path.format(workspace=world.workspace, hook_id=made.json()["id"]), {}

    return build


def signing_out(method: str, path: str) -> Call:
    async def build(world: World, role: str) -> tuple[str, str, dict[str, Any]]:
        return method, path, {"headers": await world.fresh_headers(role)}

    return build


def sign_in_form() -> Call:
    """The sign-in form as a browser sends it: with the CSRF token the page handed out."""

    async def build(world: World, role: str) -> tuple[str, str, dict[str, Any]]:
        await world.client.get("/login")
        token = world.client.cookies.get("aicode_csrf", "")
        return "POST", "/login", {"data": {**CREDS, "_csrf_token": token}}

    return build


def form(**fields: Any) -> Callable[[World], dict[str, str]]:
    return lambda world: {k: (v(world) if callable(v) else v) for k, v in fields.items()}


CREDS = {"username": "alice", "password": "alice-password"}

# (method, route path as the app names it) → (the rule, how to call it)
MATRIX: dict[tuple[str, str], tuple[dict[str, Any], Call]] = {
    ("GET", "/healthz"): (PUBLIC, call("GET", "/healthz")),
    ("GET", "/readyz"): (PUBLIC, call("GET", "/readyz")),
    # No token set and the test client is not on this machine: the same 403 for everyone.
    ("GET", "/metrics"): (PUBLIC, call("GET", "/metrics")),
    ("POST", "/api/auth/login"): (PUBLIC, call("POST", "/api/auth/login", json=CREDS)),
    ("POST", "/api/auth/setup"): (PUBLIC, call("POST", "/api/auth/setup",
                                               json={"setup_code": "x", "username": "x", "password": "x" * 8})),
    ("POST", "/api/auth/logout"): (SIGNED_IN, signing_out("POST", "/api/auth/logout")),
    ("GET", "/api/me"): (SIGNED_IN, call("GET", "/api/me")),
    ("PATCH", "/api/me"): (SIGNED_IN, call("PATCH", "/api/me", json={"git_name": "Matrix Person"})),
    ("GET", "/api/me/usage"): (SIGNED_IN, call("GET", "/api/me/usage")),
    ("GET", "/api/tokens"): (SIGNED_IN, call("GET", "/api/tokens")),
    ("POST", "/api/tokens"): (SIGNED_IN, call("POST", "/api/tokens", json=lambda w: {"name": w.unique("n")})),
    ("DELETE", "/api/tokens/{token_id:uuid}"): (SIGNED_IN, own_token("/api/tokens/{token_id}")),
    ("GET", "/api/me/credentials"): (SIGNED_IN, call("GET", "/api/me/credentials")),
    ("GET", "/api/me/credentials/{provider:str}"): (SIGNED_IN, call("GET", "/api/me/credentials/openai")),
    ("PUT", "/api/me/credentials/{provider:str}"): (SIGNED_IN, call("PUT", "/api/me/credentials/gemini",
                                                                    json={"api_key": "sk-matrix-own"})),
    ("DELETE", "/api/me/credentials/{provider:str}"): (SIGNED_IN, own_credential("DELETE",
                                                                                 "/api/me/credentials/anthropic")),
    ("GET", "/api/agents"): (SIGNED_IN, call("GET", "/api/agents")),
    ("GET", "/api/me/notifications"): (SIGNED_IN, call("GET", "/api/me/notifications")),
    ("POST", "/api/me/notifications"): (SIGNED_IN, call("POST", "/api/me/notifications", json={"url": _HOOK_URL})),
    ("DELETE", "/api/me/notifications/{hook_id:uuid}"): (SIGNED_IN, own_hook("DELETE", "/api/me/notifications/{hook_id}")),
    ("POST", "/api/me/notifications/{hook_id:uuid}/test"): (SIGNED_IN, own_hook(
        "POST", "/api/me/notifications/{hook_id}/test")),
    ("GET", "/api/workspaces/{workspace_id:uuid}/notifications"): (VIEW, call(
        "GET", "/api/workspaces/{workspace}/notifications")),
    ("POST", "/api/workspaces/{workspace_id:uuid}/notifications"): (MANAGE, call(
        "POST", "/api/workspaces/{workspace}/notifications", json={"url": _HOOK_URL})),
    ("DELETE", "/api/workspaces/{workspace_id:uuid}/notifications/{hook_id:uuid}"): (MANAGE, workspace_hook(
        "DELETE", "/api/workspaces/{workspace}/notifications/{hook_id}")),
    ("POST", "/api/workspaces/{workspace_id:uuid}/notifications/{hook_id:uuid}/test"): (MANAGE, workspace_hook(
        "POST", "/api/workspaces/{workspace}/notifications/{hook_id}/test")),
    ("GET", "/api/admin/users"): (ADMIN_ONLY, call("GET", "/api/admin/users")),
    ("POST", "/api/admin/users"): (ADMIN_ONLY, call("POST", "/api/admin/users", json=lambda w: {
        "username": w.unique("made"), "password": "made-password"})),
    ("PATCH", "/api/admin/users/{user_id:uuid}"): (ADMIN_ONLY, call("PATCH", "/api/admin/users/{zed_id}",
                                                                    json={"monthly_budget_usd": None})),
    ("GET", "/api/admin/audit"): (ADMIN_ONLY, call("GET", "/api/admin/audit")),
    ("GET", "/api/admin/nodes"): (ADMIN_ONLY, call("GET", "/api/admin/nodes")),
    ("GET", "/api/admin/image"): (ADMIN_ONLY, call("GET", "/api/admin/image")),
    # The default image of the matrix's server is there: a build starts (and fails: no Containerfile base can be
    # pulled here) or, while one runs, a 409; either proves the caller passed the admin check.
    ("POST", "/api/admin/image/build"): (ADMIN_ONLY, call("POST", "/api/admin/image/build")),
    # A stream that ends after a second: allowed callers get its 200.
    ("GET", "/api/tasks/changes"): (SIGNED_IN, call("GET", "/api/tasks/changes?timeout_s=1")),
    ("GET", "/api/workspaces"): (SIGNED_IN, call("GET", "/api/workspaces")),
    ("POST", "/api/workspaces"): (SIGNED_IN, call("POST", "/api/workspaces", json=lambda w: {
        "name": w.unique("ws"), "repo_url": str(w.repo)})),
    ("GET", "/api/workspaces/{workspace_id:uuid}"): (VIEW, call("GET", "/api/workspaces/{workspace}")),
    ("PATCH", "/api/workspaces/{workspace_id:uuid}"): (MANAGE, call("PATCH", "/api/workspaces/{workspace}",
                                                                    json={"name": "shared"})),
    # The busy task keeps it: allowed callers get 409, which proves they passed the access check.
    ("DELETE", "/api/workspaces/{workspace_id:uuid}"): (MANAGE, call("DELETE", "/api/workspaces/{workspace}")),
    ("POST", "/api/workspaces/{workspace_id:uuid}/sync"): (RUN, call("POST", "/api/workspaces/{workspace}/sync")),
    ("POST", "/api/workspaces/{workspace_id:uuid}/tasks"): (RUN, call("POST", "/api/workspaces/{workspace}/tasks",
                                                                      json={"prompt": "@say matrix"})),
    ("GET", "/api/workspaces/{workspace_id:uuid}/members"): (VIEW, call("GET", "/api/workspaces/{workspace}/members")),
    ("PUT", "/api/workspaces/{workspace_id:uuid}/members/{username:str}"): (MANAGE, call(
        "PUT", "/api/workspaces/{workspace}/members/{zed}", json={"role": "viewer"})),
    ("DELETE", "/api/workspaces/{workspace_id:uuid}/members/{username:str}"): (MANAGE, owner_first(
        _zed_is_member, call("DELETE", "/api/workspaces/{workspace}/members/{zed}"))),
    ("GET", "/api/workspaces/{workspace_id:uuid}/credentials/{provider:str}"): (VIEW, call(
        "GET", "/api/workspaces/{workspace}/credentials/anthropic")),
    ("PUT", "/api/workspaces/{workspace_id:uuid}/credentials/{provider:str}"): (MANAGE, call(
        "PUT", "/api/workspaces/{workspace}/credentials/openai", json={"api_key": "sk-team-matrix"})),
    ("DELETE", "/api/workspaces/{workspace_id:uuid}/credentials/{provider:str}"): (MANAGE, owner_first(
        _team_credential, call("DELETE", "/api/workspaces/{workspace}/credentials/anthropic"))),
    ("GET", "/api/tasks"): (SIGNED_IN, call("GET", "/api/tasks")),
    ("GET", "/api/tasks/{task_id:uuid}"): (VIEW, call("GET", "/api/tasks/{task_view}")),
    ("GET", "/api/tasks/{task_id:uuid}/events"): (VIEW, call("GET", "/api/tasks/{task_view}/events")),
    ("GET", "/api/tasks/{task_id:uuid}/diff"): (VIEW, call("GET", "/api/tasks/{task_view}/diff")),
    ("GET", "/api/tasks/{task_id:uuid}/files"): (VIEW, call("GET", "/api/tasks/{task_view}/files")),
    ("GET", "/api/tasks/{task_id:uuid}/patch"): (VIEW, call("GET", "/api/tasks/{task_view}/patch")),
    ("POST", "/api/tasks/{task_id:uuid}/messages"): (RUN, call("POST", "/api/tasks/{task_follow}/messages",
                                                               json={"prompt": "@say again"})),
    # Review comments, on the finished task's changed file. Sending addresses the task that takes follow-ups,
    # which has no open comments: allowed callers get 409, which proves they passed the access check.
    ("GET", "/api/tasks/{task_id:uuid}/comments"): (VIEW, call("GET", "/api/tasks/{task_view}/comments")),
    ("POST", "/api/tasks/{task_id:uuid}/comments"): (RUN, call("POST", "/api/tasks/{task_view}/comments", json={
        "path": "a.txt", "line": 1, "side": "new", "body": "matrix"})),
    # The owner's comment: only its author (the owner) and admins may delete it.
    ("DELETE", "/api/tasks/{task_id:uuid}/comments/{comment_id:int}"): (MANAGE, owners_comment()),
    ("POST", "/api/tasks/{task_id:uuid}/comments/send"): (RUN, call("POST", "/api/tasks/{task_follow}/comments/send")),
    # The owner's finished task: an editor may cancel only its own, so only owners and admins pass (409).
    ("POST", "/api/tasks/{task_id:uuid}/cancel"): (MANAGE, call("POST", "/api/tasks/{task_view}/cancel")),
    ("WS", "/ws/tasks/{task_id:uuid}"): (VIEW, call("WS", "/ws/tasks/{task_view}")),
    # Live sessions. Nobody holds a Gemini key here, so a created session fails at once and frees its slot.
    ("POST", "/api/workspaces/{workspace_id:uuid}/sessions"): (RUN, call(
        "POST", "/api/workspaces/{workspace}/sessions", json={"prompt": "@say matrix", "agent": "gemini"})),
    # On the owner's finished task (not a session): as for cancel, owners and admins pass (409).
    ("DELETE", "/api/sessions/{task_id:uuid}"): (MANAGE, call("DELETE", "/api/sessions/{task_view}")),
    ("POST", "/api/tasks/{task_id:uuid}/interrupt"): (MANAGE, call("POST", "/api/tasks/{task_view}/interrupt")),
    ("WS", "/ws/sessions/{task_id:uuid}"): (VIEW, call("WS", "/ws/sessions/{task_view}")),
    # The forge round trip: the workspace's repository is a local folder and it has no forge, so allowed
    # callers get 409 (push, pull request) or find nothing to move (rebase).
    ("POST", "/api/tasks/{task_id:uuid}/push"): (RUN, call("POST", "/api/tasks/{task_view}/push")),
    ("POST", "/api/tasks/{task_id:uuid}/pull-request"): (RUN, call("POST", "/api/tasks/{task_view}/pull-request")),
    ("POST", "/api/tasks/{task_id:uuid}/rebase"): (RUN, call("POST", "/api/tasks/{task_view}/rebase")),
    ("GET", "/api/me/forge-identities"): (SIGNED_IN, call("GET", "/api/me/forge-identities")),
    ("PUT", "/api/me/forge-identities"): (SIGNED_IN, call("PUT", "/api/me/forge-identities",
                                                          json=lambda w: {"github": w.unique("gh")})),
    ("POST", "/api/workspaces/{workspace_id:uuid}/webhook"): (MANAGE, call(
        "POST", "/api/workspaces/{workspace}/webhook")),
    ("DELETE", "/api/workspaces/{workspace_id:uuid}/webhook"): (MANAGE, call(
        "DELETE", "/api/workspaces/{workspace}/webhook")),
    # Deliveries authenticate by the webhook secret, whoever sends them: without one set up, a 401 for all.
    ("POST", "/api/hooks/github/{workspace_id:uuid}"): (PUBLIC, call(
        "POST", "/api/hooks/github/{workspace}", json={"action": "created"})),
    ("POST", "/api/hooks/gitlab/{workspace_id:uuid}"): (PUBLIC, call(
        "POST", "/api/hooks/gitlab/{workspace}", json={"object_kind": "note"})),
    ("GET", "/auth/oidc/login"): (PUBLIC, call("GET", "/auth/oidc/login")),
    ("GET", "/auth/oidc/callback"): (PUBLIC, call("GET", "/auth/oidc/callback")),
    ("GET", "/login"): (PUBLIC, call("GET", "/login")),
    ("POST", "/login"): (PUBLIC, sign_in_form()),
    ("POST", "/logout"): (SIGNS_OUT, signing_out("POST", "/logout")),
    ("GET", "/"): (as_page(SIGNED_IN), call("GET", "/")),
    ("GET", "/tasks/{task_id:uuid}"): (as_page(VIEW), call("GET", "/tasks/{task_view}")),
    ("GET", "/workspaces"): (as_page(SIGNED_IN), call("GET", "/workspaces")),
    ("POST", "/workspaces"): (as_page(SIGNED_IN), call("POST", "/workspaces", data=form(
        name=lambda w: w.unique("page"), repo_url=lambda w: str(w.repo)))),
    ("GET", "/workspaces/{workspace_id:uuid}"): (as_page(VIEW), call("GET", "/workspaces/{workspace}")),
    ("POST", "/workspaces/{workspace_id:uuid}/tasks"): (as_page(RUN), call(
        "POST", "/workspaces/{workspace}/tasks", data={"prompt": "@say from the page"})),
    # A session of an agent nobody has a key for ends at once: it holds no slot the other calls need.
    ("POST", "/workspaces/{workspace_id:uuid}/sessions"): (as_page(RUN), call(
        "POST", "/workspaces/{workspace}/sessions", data={"prompt": "@say from the page", "agent": "gemini"})),
    ("POST", "/workspaces/{workspace_id:uuid}/sync"): (as_page(RUN), call("POST", "/workspaces/{workspace}/sync")),
    ("POST", "/workspaces/{workspace_id:uuid}/members"): (as_page(MANAGE), call(
        "POST", "/workspaces/{workspace}/members", data=form(username=lambda w: w.zed, role="viewer"))),
    ("POST", "/workspaces/{workspace_id:uuid}/members/remove"): (as_page(MANAGE), owner_first(
        _zed_is_member, call("POST", "/workspaces/{workspace}/members/remove", data=form(username=lambda w: w.zed)))),
    ("POST", "/workspaces/{workspace_id:uuid}/forge"): (as_page(MANAGE), call(
        "POST", "/workspaces/{workspace}/forge", data={"kind": "", "auto_pr": "off"})),
    ("POST", "/workspaces/{workspace_id:uuid}/webhook"): (as_page(MANAGE), call(
        "POST", "/workspaces/{workspace}/webhook", data={})),
    ("POST", "/workspaces/{workspace_id:uuid}/credentials/{provider:str}"): (as_page(MANAGE), call(
        "POST", "/workspaces/{workspace}/credentials/gemini", data={"kind": "api_key", "secret": "team-matrix-page"})),
    ("POST", "/workspaces/{workspace_id:uuid}/credentials/{provider:str}/remove"): (as_page(MANAGE), owner_first(
        _team_credential, call("POST", "/workspaces/{workspace}/credentials/anthropic/remove"))),
    ("GET", "/settings"): (as_page(SIGNED_IN), call("GET", "/settings")),
    ("POST", "/settings/notifications"): (as_page(SIGNED_IN), call("POST", "/settings/notifications", data={
        "url": _HOOK_URL, "format": "slack", "events": "failed"})),
    ("POST", "/settings/notifications/{hook_id:uuid}/test"): (as_page(SIGNED_IN), own_hook(
        "POST", "/settings/notifications/{hook_id}/test")),
    ("POST", "/settings/notifications/{hook_id:uuid}/remove"): (as_page(SIGNED_IN), own_hook(
        "POST", "/settings/notifications/{hook_id}/remove")),
    ("POST", "/workspaces/{workspace_id:uuid}/notifications"): (as_page(MANAGE), call(
        "POST", "/workspaces/{workspace}/notifications", data={"url": _HOOK_URL, "format": "json", "events": "failed"})),
    ("POST", "/workspaces/{workspace_id:uuid}/notifications/{hook_id:uuid}/test"): (as_page(MANAGE), workspace_hook(
        "POST", "/workspaces/{workspace}/notifications/{hook_id}/test")),
    ("POST", "/workspaces/{workspace_id:uuid}/notifications/{hook_id:uuid}/remove"): (as_page(MANAGE), workspace_hook(
        "POST", "/workspaces/{workspace}/notifications/{hook_id}/remove")),
    ("POST", "/settings/git-identity"): (as_page(SIGNED_IN), call("POST", "/settings/git-identity", data=form(
        git_name="Matrix Person", git_email="matrix@example.com"))),
    ("POST", "/settings/forge-identities"): (as_page(SIGNED_IN), call("POST", "/settings/forge-identities", data=form(
        github=lambda w: w.unique("ghp")))),
    ("POST", "/settings/tokens"): (as_page(SIGNED_IN), call("POST", "/settings/tokens", data=form(
        name=lambda w: w.unique("p")))),
    ("POST", "/settings/tokens/{token_id:uuid}/revoke"): (as_page(SIGNED_IN),
                                                         own_token("/settings/tokens/{token_id}/revoke")),
    ("POST", "/settings/credentials/{provider:str}"): (as_page(SIGNED_IN), call(
        "POST", "/settings/credentials/openai", data={"kind": "api_key", "secret": "sk-matrix-page"})),
    ("POST", "/settings/credentials/{provider:str}/remove"): (as_page(SIGNED_IN), own_credential(
        "POST", "/settings/credentials/anthropic/remove")),
    ("GET", "/admin"): (as_page(ADMIN_ONLY), call("GET", "/admin")),
    ("GET", "/admin/audit"): (as_page(ADMIN_ONLY), call("GET", "/admin/audit")),
    ("GET", "/admin/nodes"): (as_page(ADMIN_ONLY), call("GET", "/admin/nodes")),
    ("POST", "/admin/image/build"): (as_page(ADMIN_ONLY), call("POST", "/admin/image/build")),
    ("POST", "/tasks"): (as_page(SIGNED_IN), call("POST", "/tasks", data=lambda w: {
        "workspace_id": "not-a-workspace", "prompt": "@say from the overview"})),
    ("POST", "/workspaces/{workspace_id:uuid}/settings"): (as_page(MANAGE), call(
        "POST", "/workspaces/{workspace}/settings", data={"name": "shared"})),
    # The busy task keeps the workspace: allowed callers get 409, which proves they passed the access check.
    ("POST", "/workspaces/{workspace_id:uuid}/delete"): (as_page(MANAGE), call(
        "POST", "/workspaces/{workspace}/delete", data={"confirm_name": "shared"})),
    ("POST", "/admin/users"): (as_page(ADMIN_ONLY), call("POST", "/admin/users", data=form(
        username=lambda w: w.unique("pg"), password="pg-password-1"))),
    ("POST", "/admin/users/{user_id:uuid}"): (as_page(ADMIN_ONLY), call("POST", "/admin/users/{zed_id}", data={
        "action": "budget", "monthly_budget_usd": ""})),
    ("GET", "/static/{file_path:path}"): (PUBLIC, call("GET", "/static/app.css")),
    ("HEAD", "/static/{file_path:path}"): (PUBLIC, call("HEAD", "/static/app.css")),
    ("GET", "/schema"): (PUBLIC, call("GET", "/schema")),
    ("GET", "/schema/openapi.json"): (PUBLIC, call("GET", "/schema/openapi.json")),
    ("GET", "/schema/{path:str}"): (PUBLIC, call("GET", "/schema/openapi.yaml")),
}


def route_table(app: Litestar) -> set[tuple[str, str]]:
    """(method, path) of every route; Litestar's automatic OPTIONS answers are left out."""
    found = set()
    for route in app.routes:
        if isinstance(route, WebSocketRoute):
            found.add(("WS", route.path))
        elif isinstance(route, HTTPRoute):
            for handler in route.route_handlers:
                found.update((method, route.path) for method in handler.http_methods if method != "OPTIONS")
    return found


def test_every_route_has_a_row(settings: Settings) -> None:
    routes = route_table(create_app(settings))
    assert sorted(routes - set(MATRIX)) == [], "add these routes to MATRIX, with the rule they follow"
    assert sorted(set(MATRIX) - routes) == [], "MATRIX names routes the app no longer has"


async def _answer(world: World, role: str, build: Call) -> Any:
    method, path, kwargs = await build(world, role)
    headers = kwargs.pop("headers", world.headers[role])
    if method == "WS":
        return await _ws_answer(world, path, headers)
    try:
        response = await world.client.request(method, path, headers=headers, follow_redirects=False, **kwargs)
    finally:
        world.client.cookies.clear()  # a sign-in's session cookie must not make the next caller someone
    if response.status_code == 303 and response.headers["location"].startswith("/login"):
        return LOGIN
    return response.status_code


async def _ws_answer(world: World, path: str, headers: dict[str, str]) -> Any:
    """200 when the stream sends events; else the status it reports (a JSON error, or a 4xxx close code)."""
    try:
        with await world.client.websocket_connect(path, headers=headers) as socket:
            first = socket.receive_json(timeout=10)
    except WebSocketDisconnect as closed:
        return closed.code - 4000 if closed.code >= 4000 else closed.code
    return first.get("status_code", 200) if "seq" not in first else 200


def _outcome(expected: Any, got: Any) -> bool:
    if expected == OK:
        return got not in (401, 403, 404, LOGIN) and (not isinstance(got, int) or got < 500)
    return got == expected


@pytest.fixture
async def world(task_app: AsyncTestClient, source_repo: Path) -> World:
    client = task_app
    admin = await login(client, *ADMIN)
    headers: dict[str, dict[str, str]] = {"admin": admin, "anonymous": {}}
    passwords = {"admin": ADMIN[1]}
    for role, name in (("owner", "alice"), ("editor", "bob"), ("viewer", "carol"), ("outsider", "dave"),
                       ("disabled", "dora")):
        headers[role] = await make_user(client, admin, name)
        passwords[role] = f"{name}-password"
        await client.put("/api/me/credentials/anthropic", json={"api_key": f"sk-{name}"}, headers=headers[role])
    zed = await make_user(client, admin, "zed")
    owner = headers["owner"]
    workspace = (await client.post("/api/workspaces", json={"name": "shared", "repo_url": str(source_repo)},
                                   headers=owner)).json()["id"]
    assert (await wait_for_status(client, owner, workspace))["status"] == "ready"
    for role, name in (("editor", "bob"), ("viewer", "carol"), ("disabled", "dora")):
        await client.put(f"/api/workspaces/{workspace}/members/{name}",
                         json={"role": "editor" if role == "disabled" else role}, headers=owner)
    view = await finished(client, owner, (await submit(client, owner, workspace, "@write a.txt a"))["id"])
    follow = await finished(client, owner, (await submit(client, owner, workspace, "@say first"))["id"])
    busy = await submit(client, owner, workspace, "@sleep 600")
    await wait_until(client, owner, busy["id"], {"running"})
    dora_id = (await client.get("/api/me", headers=headers["disabled"])).json()["id"]
    assert (await client.patch(f"/api/admin/users/{dora_id}", json={"disabled": True}, headers=admin)).status_code \
        == 200
    return World(client=client, repo=source_repo, headers=headers, passwords=passwords, workspace=workspace,
                 task_view=view["id"], task_follow=follow["id"], task_busy=busy["id"], zed="zed",
                 zed_id=(await client.get("/api/me", headers=zed)).json()["id"])


async def test_every_route_answers_every_caller_as_the_rule_says(world: World) -> None:
    wrong = []
    for (method, route), (rule, build) in MATRIX.items():
        answers = {role: await _answer(world, role, build) for role in ROLES}
        for role, got in answers.items():
            expected = answers["anonymous"] if rule[role] == SAME else rule[role]
            if not _outcome(expected, got):
                wrong.append(f"{method} {route} as {role}: expected {expected}, got {got}")
    await world.client.post(f"/api/tasks/{world.task_busy}/cancel", headers=world.headers["owner"])
    await finished(world.client, world.headers["owner"], world.task_busy)
    assert wrong == [], "\n".join(wrong)
