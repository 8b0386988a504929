"""`/api/me/usage`: what your model calls cost this month, beside your budget."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, get
from litestar.di import NamedDependency

from aicode.auth.models import UserRecord
from aicode.gateway.repo import UsageRepo

__all__ = ["UsageController"]


class Usage(msgspec.Struct):
    month_spent_usd: float
    monthly_budget_usd: float | None


class UsageController(Controller):
    path = "/api/me/usage"
    tags = ["auth"]

    @get("/")
    async def usage(self, request: Request[UserRecord, Any, Any], usage_repo: NamedDependency[UsageRepo]) -> Usage:
        """Model spend metered by the gateway this calendar month (UTC) and your budget (null: none)."""
        spent = await usage_repo.month_spent_by_user(request.user.id)
        return Usage(month_spent_usd=round(spent, 6), monthly_budget_usd=request.user.monthly_budget_usd)
