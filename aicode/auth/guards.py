"""Route guards for roles."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

__all__ = ["requires_admin"]


def requires_admin(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    # `scope.get`: an automatic OPTIONS answer is not authenticated and has no user at all.
    if connection.scope.get("method") == "OPTIONS":
        return
    if not getattr(connection.scope.get("user"), "is_admin", False):
        raise PermissionDeniedException("this needs an admin account")
