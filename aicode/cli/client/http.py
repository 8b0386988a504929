"""`ApiClient`: the aicode HTTP API over httpx, with every failure turned into one actionable line."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from aicode import __version__
from aicode.cli.client.errors import EXIT_FAILURE, EXIT_USAGE, ClientError, NotSignedIn, ServerUnreachable

__all__ = ["ApiClient", "unreachable"]

_TIMEOUT_S = 30.0


def unreachable(server: str, exc: Exception) -> ServerUnreachable:
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return ServerUnreachable(f"the aicode server at {server} did not answer in time ({reason}) — is it overloaded? "
                           "try again, or set AICODE_SERVER to another server")
    return ServerUnreachable(f"cannot reach the aicode server at {server}: {reason} — is it running? "
                       "set AICODE_SERVER or run aicode login --server URL")


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(detail := body.get("detail"), str):
        return detail
    return f"{response.status_code} {response.reason_phrase}".strip()


def _check(response: httpx.Response) -> httpx.Response:
    """The response if it is a success; a ClientError saying what went wrong otherwise."""
    status = response.status_code
    if status < 400:
        return response
    if status == 401:
        raise NotSignedIn("not signed in or token revoked: run aicode login")
    if status in (400, 422):
        raise ClientError(_detail(response), EXIT_USAGE)
    if status in (502, 503, 504):
        raise ServerUnreachable(f"the aicode server is unavailable ({status}): {_detail(response)} — "
                                "try again in a moment")
    if status >= 500:
        raise ClientError(f"the server failed ({status}): {_detail(response)}")
    raise ClientError(_detail(response), EXIT_FAILURE)


class ApiClient:
    """Synchronous calls to one server with one bearer token (or none, for sign-in)."""

    def __init__(self, server: str, token: str | None, *, timeout: float = _TIMEOUT_S) -> None:
        self.server = server
        self._token = token
        self._http = httpx.Client(base_url=server, timeout=timeout, follow_redirects=False,
                                  headers={"User-Agent": f"aicode-cli/{__version__}"})

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _headers(self, extra: dict[str, str] | None, token: str | None) -> dict[str, str]:
        token = token or self._token
        if token is None:
            raise NotSignedIn("not signed in: run aicode login (or set AICODE_TOKEN)")
        return {"Authorization": f"Bearer {token}", **(extra or {})}

    def auth_headers(self) -> dict[str, str]:
        """The header that signs a request in, for what httpx does not carry (the session's WebSocket)."""
        return self._headers(None, None)

    def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
                headers: dict[str, str] | None = None, token: str | None = None, signed: bool = True
                ) -> httpx.Response:
        """Send one request; `signed=False` sends no token (sign-in itself)."""
        all_headers = self._headers(headers, token) if signed else (headers or {})
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http.request(method, path, json=json, params=query, headers=all_headers)
        except httpx.TransportError as exc:
            raise unreachable(self.server, exc) from None
        return _check(response)

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params).json()

    def get_text(self, path: str, **params: Any) -> str:
        return self.request("GET", path, params=params).text

    def post(self, path: str, body: Any = None) -> Any:
        response = self.request("POST", path, json=body)
        return response.json() if response.content else None

    def put(self, path: str, body: Any = None) -> Any:
        response = self.request("PUT", path, json=body)
        return response.json() if response.content else None

    def delete(self, path: str) -> None:
        self.request("DELETE", path)

    @contextmanager
    def stream(self, path: str, headers: dict[str, str]) -> Iterator[httpx.Response]:
        """An open streaming response (no read timeout: a task may be quiet for minutes).

        Transport errors while connecting become ClientError; those while reading are left to the
        caller, which may resume.
        """
        request = self._http.build_request("GET", path, headers=self._headers(headers, None),
                                           timeout=httpx.Timeout(_TIMEOUT_S, read=None))
        try:
            response = self._http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise unreachable(self.server, exc) from None
        try:
            if response.status_code >= 400:
                response.read()
                _check(response)
            yield response
        finally:
            response.close()
