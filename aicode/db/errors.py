"""Translates asyncpg errors into domain errors at the repo boundary."""

from __future__ import annotations

import asyncpg

__all__ = ["is_unique_violation"]


def is_unique_violation(exc: BaseException, constraint: str | None = None) -> bool:
    """True for a unique-constraint failure (on `constraint`, when given)."""
    if not isinstance(exc, asyncpg.UniqueViolationError):
        return False
    return constraint is None or exc.constraint_name == constraint
