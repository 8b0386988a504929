"""What differs between the model APIs the gateway forwards to: where a route's calls go, how the real
credential is sent upstream, how an error the gateway itself answers is shaped so the agent CLI shows its
message, and how the answer's usage is read.

Anthropic's Messages API (Claude Code), OpenAI's Responses API (Codex, `wire_api = "responses"`) and the
Gemini API (Gemini CLI, `GOOGLE_GEMINI_BASE_URL`) each get a route prefix on the gateway's one listener.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from litestar import Response
from litestar.enums import MediaType

from aicode.credentials.providers import ANTHROPIC, GEMINI, OPENAI
from aicode.gateway.metering import GeminiUsageMeter, Meter, OpenAIUsageMeter, UsageMeter
from aicode.gateway.models import ModelCredential
from aicode.gateway.prices import PriceTable

__all__ = ["OAUTH_BETA", "WIRES", "Wire", "anthropic_error"]

OAUTH_BETA = "oauth-2025-04-20"

_ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
                    403: "permission_error", 404: "not_found_error", 413: "request_too_large",
                    429: "rate_limit_error", 529: "overloaded_error"}
_OPENAI_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 402: "insufficient_quota",
                 403: "permission_error", 404: "invalid_request_error", 413: "invalid_request_error",
                 429: "rate_limit_exceeded"}
_GOOGLE_STATUSES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 402: "RESOURCE_EXHAUSTED",
                    403: "PERMISSION_DENIED", 404: "NOT_FOUND", 413: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED",
                    500: "INTERNAL", 502: "UNAVAILABLE", 503: "UNAVAILABLE"}


def anthropic_error(status: int, message: str, *, final: bool = False) -> Response[dict[str, object]]:
    """An error in the Messages API's shape; `final` adds `x-should-retry: false` so clients give up at once."""
    kind = _ANTHROPIC_TYPES.get(status, "invalid_request_error" if status < 500 else "api_error")
    body: dict[str, object] = {"type": "error", "error": {"type": kind, "message": f"aicode gateway: {message}"}}
    return _json(body, status, final)


def openai_error(status: int, message: str, *, final: bool = False) -> Response[dict[str, object]]:
    """An error as the OpenAI API answers one: `{"error": {message, type, param, code}}`."""
    kind = _OPENAI_TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")
    body: dict[str, object] = {"error": {"message": f"aicode gateway: {message}", "type": kind, "param": None,
                                         "code": kind}}
    return _json(body, status, final)


def gemini_error(status: int, message: str, *, final: bool = False) -> Response[dict[str, object]]:
    """An error as Google's APIs answer one: `{"error": {code, message, status}}`."""
    code = _GOOGLE_STATUSES.get(status, "INVALID_ARGUMENT" if status < 500 else "INTERNAL")
    body: dict[str, object] = {"error": {"code": status, "message": f"aicode gateway: {message}", "status": code}}
    return _json(body, status, final)


def _json(body: dict[str, object], status: int, final: bool) -> Response[dict[str, object]]:
    headers = {"x-should-retry": "false"} if final else {}
    return Response(body, status_code=status, headers=headers, media_type=MediaType.JSON)


def _anthropic_auth(credential: ModelCredential) -> dict[str, str]:
    if credential.kind == "oauth_token":
        # A subscription's OAuth token is accepted only with this beta flag.
        return {"authorization": f"Bearer {credential.secret}", "anthropic-beta": OAUTH_BETA}
    return {"x-api-key": credential.secret}


@dataclass(frozen=True, slots=True)
class Wire:
    """One provider's API as the gateway speaks it."""

    provider: str
    label: str
    prefix: str  # the gateway's route prefix; the rest of the path is appended to the upstream base
    error: Callable[..., Response[dict[str, object]]]
    auth: Callable[[ModelCredential], dict[str, str]]
    meter: Callable[[PriceTable, str | None], Meter]


WIRES: dict[str, Wire] = {
    ANTHROPIC: Wire(ANTHROPIC, "Anthropic", "", anthropic_error, _anthropic_auth,
                    lambda prices, _model: UsageMeter(prices)),
    OPENAI: Wire(OPENAI, "OpenAI", "/openai/v1", openai_error,
                 lambda credential: {"authorization": f"Bearer {credential.secret}"}, OpenAIUsageMeter),
    GEMINI: Wire(GEMINI, "Google Gemini", "/gemini", gemini_error,
                 lambda credential: {"x-goog-api-key": credential.secret}, GeminiUsageMeter),
}
