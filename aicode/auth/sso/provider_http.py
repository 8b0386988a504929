"""The few HTTP calls single sign-on makes to an identity provider, with a short timeout each."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from aicode.errors import UnavailableError

__all__ = ["PROVIDER_TIMEOUT_S", "ProviderError", "get_json", "post_form"]

# An identity provider that does not answer within this many seconds is treated as down: a request
# waiting on it holds a worker, and a sign-in page that hangs is worse than one that says so.
PROVIDER_TIMEOUT_S = 5.0
# Discovery documents and key sets are a few KiB; anything much larger is not one.
_MAX_BODY_BYTES = 512 * 1024


class ProviderError(UnavailableError):
    """The identity provider could not be reached or gave an answer that makes no sense."""


async def get_json(url: str, *, timeout_s: float = PROVIDER_TIMEOUT_S) -> dict[str, Any]:
    """GET a JSON object; ProviderError (naming the URL, never a credential) when that fails."""
    body: dict[str, Any] = await _json_call("GET", url, timeout_s=timeout_s)
    return body


async def post_form(
    url: str, form: Mapping[str, str], *, auth: tuple[str, str] | None = None, timeout_s: float = PROVIDER_TIMEOUT_S
) -> tuple[int, dict[str, Any]]:
    """POST a form and answer (status, JSON object); the status is the caller's to judge (OAuth errors are 400s)."""
    answer: tuple[int, dict[str, Any]] = await _json_call(
        "POST", url, form=form, auth=auth, timeout_s=timeout_s, any_status=True)
    return answer


async def _json_call(method: str, url: str, *, timeout_s: float, form: Mapping[str, str] | None = None,
                     auth: tuple[str, str] | None = None, any_status: bool = False) -> Any:
    try:
        # One client per call: these calls are rare (keys and discovery are cached), and nothing
        # is left open between requests or at shutdown.
        async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=False) as client:
            response = await client.request(method, url, data=form, auth=auth,
                                            headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise ProviderError(f"the identity provider at {url} did not answer ({type(exc).__name__}); "
                            "is it up and reachable from this server?") from None
    if (response.status_code != 200 and not any_status) or len(response.content) > _MAX_BODY_BYTES:
        raise ProviderError(f"the identity provider answered {url} with HTTP {response.status_code}")
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ProviderError(f"the identity provider answered {url} with something other than a JSON object")
    return (response.status_code, body) if any_status else body
