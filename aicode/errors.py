"""The domain error tree. Services raise these; the app maps them to HTTP answers."""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AicodeError",
    "AuthenticationError",
    "ConflictError",
    "ForbiddenError",
    "InvalidInputError",
    "NotFoundError",
    "UnavailableError",
]


class AicodeError(Exception):
    """A failure a client can act on; `detail` is safe to show, `status_code` is its HTTP status."""

    status_code: ClassVar[int] = 500

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


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


class UnavailableError(AicodeError):
    status_code = 503
