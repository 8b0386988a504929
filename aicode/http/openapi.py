"""The OpenAPI surface: the JSON document only (no UI pulling scripts from a CDN), and the error
answers each route really gives, all with the one error body `{status_code, detail}`."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.plugins import ReceiveRoutePlugin
from litestar.routes import BaseRoute, HTTPRoute

from aicode.http.input_guard import takes_json_body

__all__ = ["ERROR_DESCRIPTIONS", "ROUTE_ERRORS", "ErrorBody", "ErrorResponsesPlugin", "openapi_config"]

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

ERROR_DESCRIPTIONS = {
    400: "Bad request: a parameter or field is invalid, holds a NUL character, is an integer beyond 64 bits, "
         "or the JSON is nested too deeply; `detail` names the field",
    401: "Authentication required, or the credential is wrong, expired or revoked",
    403: "Not allowed: an admin-only route, a workspace role that does not permit this, "
         "or (browser sessions) a missing CSRF token",
    404: "No such resource, or it is not visible to you",
    409: "The resource's current state does not allow this now; `detail` says what to do",
    413: "The request body is larger than the server accepts (1 MiB)",
    415: "The body must be JSON sent with 'Content-Type: application/json'",
    429: "A limit is reached (failed sign-ins, queued tasks, workspaces, fetches under way); "
         "`Retry-After` says when to try again",
    502: "A service beyond the server (a forge's API, a git remote) failed or could not be reached; `detail` "
         "names it",
    507: "The server's data disk is under the free space new tasks need (AICODE_MIN_FREE_DISK_MB)",
    503: "A service the server depends on (database, Docker engine) is unreachable",
}

# Statuses the services raise that the route's shape does not reveal (see ErrorResponsesPlugin).
ROUTE_ERRORS: dict[str, tuple[int, ...]] = {
    "POST /api/auth/login": (401, 429),
    "POST /api/auth/setup": (401, 409),
    "POST /api/admin/users": (409,),
    "POST /api/admin/image/build": (409,),
    "POST /api/tokens": (409,),
    "DELETE /api/me/credentials/{provider}": (404,),
    "DELETE /api/workspaces/{workspace_id}/credentials/{provider}": (404,),
    "POST /api/workspaces": (409, 429),
    "GET /api/agents": (404,),
    "PATCH /api/workspaces/{workspace_id}": (409,),
    "DELETE /api/workspaces/{workspace_id}": (409,),
    "POST /api/workspaces/{workspace_id}/sync": (409, 429),
    "POST /api/workspaces/{workspace_id}/tasks": (409, 429, 507),
    "PUT /api/workspaces/{workspace_id}/members/{username}": (409,),
    "DELETE /api/workspaces/{workspace_id}/members/{username}": (409,),
    "POST /api/tasks/{task_id}/messages": (409, 429, 507),
    "POST /api/tasks/{task_id}/cancel": (409,),
    "POST /api/tasks/{task_id}/interrupt": (409,),
    "DELETE /api/sessions/{task_id}": (409,),
    "POST /api/workspaces/{workspace_id}/sessions": (409, 429, 507),
    "GET /api/tasks/{task_id}/diff": (409,),
    "GET /api/tasks/{task_id}/files": (409,),
    "GET /api/tasks/{task_id}/patch": (409,),
    "POST /api/tasks/{task_id}/comments": (409,),
    "POST /api/tasks/{task_id}/comments/send": (409, 429, 507),
    "POST /api/tasks/{task_id}/push": (409, 502),
    "POST /api/tasks/{task_id}/pull-request": (409, 429, 502),
    "POST /api/tasks/{task_id}/rebase": (409, 429, 502),
    "PUT /api/me/forge-identities": (409,),
    "POST /api/workspaces/{workspace_id}/webhook": (409,),
    "POST /api/hooks/github/{workspace_id}": (401, 404, 409),
    "POST /api/hooks/gitlab/{workspace_id}": (401, 404, 409),
    "GET /readyz": (503,),
}


class ErrorBody(msgspec.Struct):
    """Every error answer: the status again, a message saying what was wrong, and for invalid
    parameters the list of problems."""

    status_code: int
    detail: str
    extra: list[dict[str, Any]] | dict[str, Any] | None = None


def openapi_config(version: str) -> OpenAPIConfig:
    """The document at /schema and /schema/openapi.json; no HTML UI, so no page loads from another host."""
    return OpenAPIConfig(
        title="aicode", version=version, path="/schema",
        render_plugins=[JsonRenderPlugin(path=["/", "/openapi.json"])],
    )


class ErrorResponsesPlugin(ReceiveRoutePlugin):
    """Adds to each documented route the error statuses it can answer, derived from its configuration:

    400 for every route (the input guard checks each request's query), 401 unless it is public,
    403 where it is guarded, changes state (CSRF) or addresses a workspace or task (roles), 404 where
    the path names a resource, 413 and 415 where it takes a JSON body, and ROUTE_ERRORS for what only
    its service knows. Statuses a handler already declares with `responses=` are left as they are.
    """

    def __init__(self, public_paths: Iterable[str] = (), route_errors: Mapping[str, Iterable[int]] = ROUTE_ERRORS):
        self._public = [re.compile(pattern) for pattern in public_paths]
        self._route_errors = {key: tuple(codes) for key, codes in route_errors.items()}

    def receive_route(self, route: BaseRoute) -> None:
        if not isinstance(route, HTTPRoute):
            return
        for handler in route.route_handlers:
            if handler.resolve_include_in_schema():
                statuses = self.statuses(route, handler)
                declared = dict(handler.responses or {})
                for status in statuses:
                    declared.setdefault(status, ResponseSpec(data_container=ErrorBody,
                                                             description=ERROR_DESCRIPTIONS[status]))
                handler.responses = declared

    def statuses(self, route: HTTPRoute, handler: HTTPRouteHandler) -> list[int]:
        """The error statuses `handler` (on `route`) can answer."""
        public = bool(handler.opt.get("exclude_from_auth")) or any(p.search(route.path) for p in self._public)
        unsafe = not handler.http_methods <= _SAFE_METHODS
        found = {400}
        if not public:
            found.add(401)
            if unsafe or handler.resolve_guards() or route.path_parameters:
                found.add(403)
        if route.path_parameters:
            found.add(404)
        if takes_json_body(handler):
            found.update((413, 415))
        for method in handler.http_methods:
            found.update(self._route_errors.get(f"{method} {route.path_format}", ()))
        return sorted(found)
