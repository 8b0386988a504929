"""Route guards for roles."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

__all__ = ["requires_admin"]


def requires_admin(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    if not getattr(connection.user, "is_admin", False):
        raise PermissionDeniedException("this needs an admin account")
