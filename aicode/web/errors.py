"""How the pages fail: a signed-out visitor goes to the sign-in page, every other error is an HTML page (or,
for a client that asks for JSON only, the JSON error the API answers)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException
from litestar.response import Redirect
from litestar.status_codes import HTTP_303_SEE_OTHER, HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import ExceptionHandlersMap

from aicode.errors import AicodeError
from aicode.http.urls import redact_userinfo
from aicode.web.templating import page

__all__ = ["PAGE_EXCEPTION_HANDLERS", "error_page", "safe_next", "wants_html"]

log = structlog.get_logger(__name__)

_TITLES = {400: "That did not work", 401: "Sign in", 403: "Not allowed", 404: "Not found", 409: "Not now"}


def safe_next(target: str | None) -> str:
    """A local path to return to after signing in; anything else (another site, `//host`) becomes `/`."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _to_sign_in(request: Request[Any, Any, Any], _: Exception) -> Response[Any]:
    # Back to the page after signing in; a form post whose session had expired cannot be replayed
    # as a GET, so it goes back to the overview instead.
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    target = safe_next(here) if request.method == "GET" else "/"
    return Redirect(f"/login?next={quote(target, safe='/')}", status_code=HTTP_303_SEE_OTHER)


_SERVER_ERROR = "Something went wrong on the server; its log has the details."


def wants_html(request: Request[Any, Any, Any]) -> bool:
    """A browser asking for a page (an unknown URL typed or followed): it gets an HTML error page, while API
    clients (`/api/…`, or anything not asking for HTML) keep the JSON error."""
    path = request.url.path
    if path.startswith(("/api/", "/ws/", "/schema", "/metrics", "/static/")):
        return False
    return "text/html" in request.headers.get("accept", "")


def _wants_json(request: Request[Any, Any, Any]) -> bool:
    # A script calling a page's URL with `Accept: application/json`; a browser (and `*/*`) gets the page.
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def error_page(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    return _error_page(request, exc)


def _error_page(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    # Our own errors are worded for people; a framework's are shown only when they are the client's fault.
    if isinstance(exc, AicodeError) or (isinstance(exc, HTTPException) and exc.status_code < 500):
        status, detail = exc.status_code, exc.detail
    else:
        # A server error's own words (a framework's, say) are for the log, never the page.
        log.error("page.unhandled_error", path=request.url.path, exc_info=exc)
        status = exc.status_code if isinstance(exc, (HTTPException, AicodeError)) else HTTP_500_INTERNAL_SERVER_ERROR
        detail = _SERVER_ERROR
    if status == 403 and "CSRF" in detail:
        detail = "This form has expired or did not come from this site. Reload the page and try again."
    if _wants_json(request):
        return Response({"status_code": status, "detail": redact_userinfo(detail)}, status_code=status)
    title = _TITLES.get(status, "Server error" if status >= 500 else "That did not work")
    return page("error.html", status_code=status, title=title, detail=detail, status=status)


PAGE_EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    NotAuthorizedException: _to_sign_in,
    HTTPException: _error_page,
    AicodeError: _error_page,
    Exception: _error_page,
}
