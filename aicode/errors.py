"""The domain error tree. Services raise these; the app maps them to HTTP answers."""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AicodeError",
    "AuthenticationError",
    "BadGatewayError",
    "ConflictError",
    "ForbiddenError",
    "InsufficientStorageError",
    "InvalidInputError",
    "NotFoundError",
    "TooManyError",
    "UnavailableError",
]


class AicodeError(Exception):
    """A failure a client can act on; `detail` is safe to show, `status_code` is its HTTP status."""

    status_code: ClassVar[int] = 500

    def __init__(self, detail: str, *, retry_after_s: int | None = None, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        # Sent as Retry-After: when the client may try again (limits, throttling).
        self.retry_after_s = retry_after_s
        # More fields of the error body, for clients that act on them (the paths of a conflict, say).
        self.extra = extra or {}


class InvalidInputError(AicodeError):
    status_code = 400


class AuthenticationError(AicodeError):
    status_code = 401


class ForbiddenError(AicodeError):
    status_code = 403


class NotFoundError(AicodeError):
    status_code = 404


class ConflictError(AicodeError):
    status_code = 409


class TooManyError(AicodeError):
    """A limit is reached: too many queued tasks, workspaces, or attempts."""

    status_code = 429


class InsufficientStorageError(AicodeError):
    """The server's disk is too full to take the work on."""

    status_code = 507


class BadGatewayError(AicodeError):
    """A service aicode depends on (a forge, a git remote) failed or answered in a way aicode cannot use."""

    status_code = 502


class UnavailableError(AicodeError):
    status_code = 503
