"""The server's side of the gateway port: grants from the GrantStore, budgets and usage in the database,
refusals reported in the task's feed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import structlog

from aicode.background import BackgroundTasks
from aicode.gateway.grants import GrantStore
from aicode.gateway.models import ModelUsage, TurnGrant
from aicode.gateway.repo import Spend, UsageRepo
from aicode.metrics.instruments import MODEL_COST, MODEL_TOKENS

__all__ = ["ServerGatewayBackend", "budget_refusal"]

log = structlog.get_logger(__name__)

# Posts a notice event into a task's feed.
Notify = Callable[[UUID, str, str, str], Awaitable[None]]


def _usd(amount: float) -> str:
    # Cents for ordinary amounts; enough digits that a tiny cap does not read as "$0.00".
    return f"${amount:.2f}" if amount >= 0.01 or amount == 0 else f"${amount:.6f}".rstrip("0")


def budget_refusal(spend: Spend) -> str | None:
    """Which budget is spent, in words for the task's error; None while all have room."""
    if spend.task_cap is not None and spend.task_spent >= spend.task_cap:
        return (f"the task's max_cost_usd budget of {_usd(spend.task_cap)} is spent "
                f"({_usd(spend.task_spent)} used)")
    if spend.user_cap is not None and spend.user_spent >= spend.user_cap:
        return (f"{spend.username or 'the requester'}'s monthly budget of {_usd(spend.user_cap)} is spent "
                f"({_usd(spend.user_spent)} used this month): an admin can raise it")
    if spend.workspace_cap is not None and spend.workspace_spent >= spend.workspace_cap:
        name = f" {spend.workspace_name}" if spend.workspace_name else ""
        return (f"the workspace{name}'s monthly budget of {_usd(spend.workspace_cap)} is spent "
                f"({_usd(spend.workspace_spent)} used this month): an admin can raise it")
    return None


class ServerGatewayBackend:
    def __init__(self, grants: GrantStore, usage: UsageRepo, background: BackgroundTasks, notify: Notify) -> None:
        self._grants = grants
        self._usage = usage
        self._background = background
        self._notify = notify

    async def grant_for(self, token: str) -> TurnGrant | None:
        return self._grants.lookup(token)

    async def refusal_for(self, grant: TurnGrant) -> str | None:
        reason = budget_refusal(await self._usage.spend(grant.task_id, grant.user_id, grant.workspace_id))
        if reason is not None and grant.refusal is None:
            grant.refusal = reason
            log.warning("gateway.budget_refused", task_id=str(grant.task_id), reason=reason)
            self._post(grant.task_id, "error", "budget_exhausted", f"model call refused: {reason}")
        return reason

    async def record_usage(self, grant: TurnGrant, usage: ModelUsage) -> None:
        grant.spent_usd += usage.cost_usd
        await self._usage.insert(grant.task_id, grant.user_id, grant.workspace_id, usage)
        for kind, count in (("input", usage.input_tokens), ("output", usage.output_tokens),
                            ("cache_read", usage.cache_read_tokens), ("cache_write", usage.cache_write_tokens)):
            MODEL_TOKENS.labels(kind).inc(count)
        MODEL_COST.inc(usage.cost_usd)

    def egress_refused(self, grant: TurnGrant | None, target: str, reason: str) -> None:
        if grant is not None:
            self._post(grant.task_id, "warning", "egress_refused", f"outbound connection to {target} refused: {reason}")

    def _post(self, task_id: UUID, level: str, code: str, message: str) -> None:
        async def post() -> Any:
            await self._notify(task_id, level, code, message)

        try:
            self._background.spawn(post(), name=f"gateway-notice-{task_id}")
        except RuntimeError:  # shutting down: the log line above is enough
            pass
