"""`RequestInputGuard`: refuses bad request data with a 400 (or a 415) before any handler runs."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from litestar import Request
from litestar.enums import RequestEncodingType, ScopeType
from litestar.exceptions import ClientException
from litestar.handlers import HTTPRouteHandler
from litestar.middleware import ASGIMiddleware
from litestar.status_codes import HTTP_415_UNSUPPORTED_MEDIA_TYPE
from litestar.types import ASGIApp, Receive, Scope, Send

from aicode.http.input_checks import BIGINT_MAX, InputProblem, decode_json, json_problem, pairs_problem

__all__ = ["RequestInputGuard", "takes_json_body"]

_FORM_TYPES = (RequestEncodingType.URL_ENCODED, RequestEncodingType.MULTI_PART)


def takes_json_body(handler: Any) -> bool:
    """True for a handler whose `data` parameter is decoded from a JSON body."""
    if not isinstance(handler, HTTPRouteHandler):
        return False
    data = handler.parsed_fn_signature.parameters.get("data")
    if data is None:
        return False
    return getattr(data.kwarg_definition, "media_type", RequestEncodingType.JSON) == RequestEncodingType.JSON


def _is_json(media_type: str) -> bool:
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


def _refuse(problem: str | None) -> None:
    if problem:
        raise ClientException(detail=problem)


async def _check_json_body(request: Request[Any, Any, Any]) -> None:
    media_type = request.content_type[0]
    body = await request.body()
    if not _is_json(media_type):
        if not body and not media_type:
            return  # no body at all: the handler says which one it needs
        said = f"this request said {media_type!r}" if media_type else "this request had no Content-Type"
        raise ClientException(
            detail=f"send the body as JSON with 'Content-Type: application/json' ({said})",
            status_code=HTTP_415_UNSUPPORTED_MEDIA_TYPE,
        )
    if not body:
        return
    try:
        document = decode_json(body)
    except InputProblem as exc:
        raise ClientException(detail=str(exc)) from None
    _refuse(json_problem(document))


def _last_event_id_problem(request: Request[Any, Any, Any]) -> str | None:
    # An SSE client resends the last `id:` it saw (an event seq, a bigint) as the stream's `after`.
    value = request.headers.get("last-event-id", "")
    # The length test first: int() refuses strings of more than 4300 digits.
    if value.isascii() and value.isdigit() and (len(value) > 19 or int(value) > BIGINT_MAX):
        return f"Last-Event-ID: integer out of range: it must be at most {BIGINT_MAX}"
    return None


class RequestInputGuard(ASGIMiddleware):
    """Checks the query, path parameters and body (JSON or form) of each HTTP request.

    Refused: NUL characters and lone surrogates in any text (PostgreSQL cannot store them), JSON
    integers and a Last-Event-ID beyond bigint, JSON nested deeper than MAX_JSON_DEPTH (all 400),
    and a JSON endpoint called with another Content-Type (415). The body is read once here; Litestar
    keeps it for the handler. Installed inside authentication, so a request without credentials
    still gets its 401.
    """

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        query = scope.get("query_string", b"").decode("latin-1")
        _refuse(pairs_problem(parse_qsl(query, keep_blank_values=True)))
        _refuse(pairs_problem((name, value) for name, value in scope.get("path_params", {}).items()))
        request: Request[Any, Any, Any] = Request(scope, receive)
        _refuse(_last_event_id_problem(request))
        if takes_json_body(scope.get("route_handler")):
            await _check_json_body(request)
        elif request.content_type[0] in _FORM_TYPES:
            form = await request.form()
            _refuse(pairs_problem(form.multi_items()))
        await next_app(scope, receive, send)
