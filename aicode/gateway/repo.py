"""SQL for the gateway: the running turns' capability tokens, metered model calls, and spend vs budgets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast
from uuid import UUID

from aicode.db.pool import Database
from aicode.gateway.models import ModelUsage

__all__ = ["GrantRepo", "Spend", "UsageRepo"]

# The current calendar month in UTC, whatever the database session's time zone.
_MONTH_START = "date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"


@dataclass(frozen=True, slots=True)
class Spend:
    """What a turn's task, requester and workspace have spent, beside their caps (None: no cap)."""

    task_spent: float
    task_cap: float | None
    user_spent: float
    user_cap: float | None
    workspace_spent: float
    workspace_cap: float | None
    username: str | None = None
    workspace_name: str | None = None


class GrantRepo:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert(self, token_hash: bytes, task_id: UUID, user_id: UUID, workspace_id: UUID) -> None:
        await self._db.pool.execute(
            "INSERT INTO turn_grants (token_hash, task_id, user_id, workspace_id) VALUES ($1, $2, $3, $4)",
            token_hash, task_id, user_id, workspace_id,
        )

    async def delete(self, token_hash: bytes) -> None:
        await self._db.pool.execute("DELETE FROM turn_grants WHERE token_hash = $1", token_hash)

    async def delete_ended(self) -> int:
        """Tokens of turns that are no longer running (left behind by a crash)."""
        status = await self._db.pool.execute(
            """DELETE FROM turn_grants g WHERE NOT EXISTS
                   (SELECT 1 FROM tasks t WHERE t.id = g.task_id AND t.status = 'running')""")
        return int(status.split()[-1])


class UsageRepo:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert(self, task_id: UUID, user_id: UUID, workspace_id: UUID, usage: ModelUsage) -> None:
        await self._db.pool.execute(
            """INSERT INTO model_usage (task_id, user_id, workspace_id, provider, model, input_tokens,
                   output_tokens, cache_read_tokens, cache_write_tokens, cost_usd)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)""",
            task_id, user_id, workspace_id, usage.provider, usage.model, usage.input_tokens, usage.output_tokens,
            usage.cache_read_tokens, usage.cache_write_tokens, usage.cost_usd,
        )

    async def spend(self, task_id: UUID, user_id: UUID, workspace_id: UUID) -> Spend:
        row = await self._db.pool.fetchrow(
            f"""SELECT
                  (SELECT coalesce(sum(cost_usd), 0) FROM model_usage WHERE task_id = $1) AS task_spent,
                  (SELECT max_cost_usd FROM tasks WHERE id = $1) AS task_cap,
                  (SELECT coalesce(sum(cost_usd), 0) FROM model_usage
                    WHERE user_id = $2 AND created_at >= {_MONTH_START}) AS user_spent,
                  (SELECT monthly_budget_usd FROM users WHERE id = $2) AS user_cap,
                  (SELECT coalesce(sum(cost_usd), 0) FROM model_usage
                    WHERE workspace_id = $3 AND created_at >= {_MONTH_START}) AS workspace_spent,
                  (SELECT monthly_budget_usd FROM workspaces WHERE id = $3) AS workspace_cap,
                  (SELECT username FROM users WHERE id = $2) AS username,
                  (SELECT name FROM workspaces WHERE id = $3) AS workspace_name""",
            task_id, user_id, workspace_id,
        )
        assert row is not None
        return Spend(**dict(row))

    async def month_spent_by_user(self, user_id: UUID) -> float:
        return cast(float, await self._db.pool.fetchval(
            f"SELECT coalesce(sum(cost_usd), 0) FROM model_usage WHERE user_id = $1 AND created_at >= {_MONTH_START}",
            user_id))

    async def month_spent_in_workspace(self, workspace_id: UUID) -> float:
        return cast(float, await self._db.pool.fetchval(
            f"""SELECT coalesce(sum(cost_usd), 0) FROM model_usage
                WHERE workspace_id = $1 AND created_at >= {_MONTH_START}""", workspace_id))
