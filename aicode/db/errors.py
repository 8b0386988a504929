"""Translates asyncpg errors into domain errors at the repo boundary."""

from __future__ import annotations

import asyncpg

__all__ = ["is_connection_failure", "is_unique_violation"]


def is_unique_violation(exc: BaseException, constraint: str | None = None) -> bool:
    """True for a unique-constraint failure (on `constraint`, when given)."""
    if not isinstance(exc, asyncpg.UniqueViolationError):
        return False
    return constraint is None or exc.constraint_name == constraint


def is_connection_failure(exc: BaseException) -> bool:
    """True when the database could not be reached or the connection broke (a restart, a fail-over):
    worth trying again once it is back, unlike an error in the statement itself."""
    return isinstance(exc, (OSError, asyncpg.InterfaceError, asyncpg.ConnectionDoesNotExistError,
                            asyncpg.CannotConnectNowError, asyncpg.ConnectionFailureError,
                            asyncpg.AdminShutdownError, asyncpg.CrashShutdownError))
