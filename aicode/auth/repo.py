"""SQL for users, API tokens and revoked JWTs."""

from __future__ import annotations

from datetime import datetime
from typing import cast
from uuid import UUID

import asyncpg

from aicode.auth.models import UserRecord
from aicode.db.errors import is_unique_violation
from aicode.db.pool import Database
from aicode.errors import ConflictError

__all__ = ["RevokedJwtRepo", "TokenRepo", "UserRepo"]

_USER_COLUMNS = ("id, username, password_hash, is_admin, disabled, created_at, monthly_budget_usd, session_version, "
                 "git_name, git_email")


def _user(row: asyncpg.Record | None) -> UserRecord | None:
    return None if row is None else UserRecord(**dict(row))


class UserRepo:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def count(self) -> int:
        return cast(int, await self._db.pool.fetchval("SELECT count(*) FROM users"))

    async def get(self, user_id: UUID) -> UserRecord | None:
        return _user(await self._db.pool.fetchrow(f"SELECT {_USER_COLUMNS} FROM users WHERE id = $1", user_id))

    async def get_by_username(self, username: str) -> UserRecord | None:
        row = await self._db.pool.fetchrow(
            f"SELECT {_USER_COLUMNS} FROM users WHERE lower(username) = lower($1)", username
        )
        return _user(row)

    async def list(self) -> list[UserRecord]:
        rows = await self._db.pool.fetch(f"SELECT {_USER_COLUMNS} FROM users ORDER BY lower(username)")
        return [UserRecord(**dict(row)) for row in rows]

    async def insert(
        self, username: str, password_hash: str, is_admin: bool, *, only_if_no_users: bool = False
    ) -> UserRecord | None:
        """Insert a user; with `only_if_no_users`, insert nothing (and return None) once any user exists."""
        guard = "WHERE NOT EXISTS (SELECT 1 FROM users)" if only_if_no_users else ""
        try:
            async with self._db.transaction() as conn:
                if only_if_no_users:
                    # Serialises first-admin creation: two concurrent bootstraps cannot both insert.
                    await conn.execute("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")
                row = await conn.fetchrow(
                    f"INSERT INTO users (username, password_hash, is_admin) SELECT $1, $2, $3 {guard}"
                    f" RETURNING {_USER_COLUMNS}",
                    username,
                    password_hash,
                    is_admin,
                )
        except asyncpg.UniqueViolationError as exc:
            if is_unique_violation(exc, "users_username_key"):
                raise ConflictError(f"a user named {username!r} already exists") from None
            raise
        return _user(row)

    async def update(
        self, user_id: UUID, *, disabled: bool | None, password_hash: str | None, is_admin: bool | None,
        budget: tuple[float | None] | None = None,
    ) -> UserRecord | None:
        """Change the given fields (None: keep); `budget` is `(value,)` to set the monthly budget, `(None,)` to clear."""
        row = await self._db.pool.fetchrow(
            f"""UPDATE users SET
                    disabled = coalesce($2, disabled),
                    password_hash = coalesce($3, password_hash),
                    is_admin = coalesce($4, is_admin),
                    monthly_budget_usd = CASE WHEN $5 THEN $6 ELSE monthly_budget_usd END,
                    updated_at = now()
                WHERE id = $1 RETURNING {_USER_COLUMNS}""",
            user_id,
            disabled,
            password_hash,
            is_admin,
            budget is not None,
            budget[0] if budget is not None else None,
        )
        return _user(row)

    async def set_git_identity(self, user_id: UUID, name: str | None, email: str | None) -> UserRecord | None:
        """The user's git author name and email (None clears one: the default is used again)."""
        return _user(await self._db.pool.fetchrow(
            f"""UPDATE users SET git_name = $2, git_email = $3, updated_at = now() WHERE id = $1
                RETURNING {_USER_COLUMNS}""", user_id, name, email))

    async def end_sessions(self, user_id: UUID) -> None:
        """Every JWT issued so far stops working, and every API token is revoked (for good)."""
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE users SET session_version = session_version + 1, updated_at = now() WHERE id = $1", user_id)
            await conn.execute(
                "UPDATE api_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL", user_id)


class TokenRepo:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert(self, user_id: UUID, name: str, token_hash: bytes, prefix: str) -> asyncpg.Record:
        try:
            return await self._db.pool.fetchrow(
                """INSERT INTO api_tokens (user_id, name, token_hash, prefix) VALUES ($1, $2, $3, $4)
                   RETURNING id, name, prefix, created_at""",
                user_id,
                name,
                token_hash,
                prefix,
            )
        except asyncpg.UniqueViolationError as exc:
            if is_unique_violation(exc, "api_tokens_live_name_key"):
                raise ConflictError(f"you already have an API token named {name!r}") from None
            raise

    async def find_live(self, token_hash: bytes) -> tuple[UUID, UserRecord] | None:
        """The token's id and owner, if the token exists and is not revoked."""
        row = await self._db.pool.fetchrow(
            f"""SELECT t.id AS token_id, t.last_used_at, {", ".join("u." + c for c in _USER_COLUMNS.split(", "))}
                FROM api_tokens t JOIN users u ON u.id = t.user_id
                WHERE t.token_hash = $1 AND t.revoked_at IS NULL""",
            token_hash,
        )
        if row is None:
            return None
        fields = dict(row)
        token_id = fields.pop("token_id")
        fields.pop("last_used_at")
        return token_id, UserRecord(**fields)

    async def touch(self, token_id: UUID) -> None:
        """Record use, at most once a minute per token so busy scripts do not write on every call."""
        await self._db.pool.execute(
            """UPDATE api_tokens SET last_used_at = now()
               WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')""",
            token_id,
        )

    async def list(self, user_id: UUID) -> list[asyncpg.Record]:
        return cast(list[asyncpg.Record], await self._db.pool.fetch(
            """SELECT id, name, prefix, created_at, last_used_at FROM api_tokens
               WHERE user_id = $1 AND revoked_at IS NULL ORDER BY created_at""",
            user_id,
        ))

    async def revoke(self, user_id: UUID, token_id: UUID) -> bool:
        status: str = await self._db.pool.execute(
            "UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
            token_id,
            user_id,
        )
        return status.endswith(" 1")


class RevokedJwtRepo:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, jti: str, expires_at: datetime) -> None:
        async with self._db.transaction() as conn:
            await conn.execute("DELETE FROM revoked_jwts WHERE expires_at < now()")
            await conn.execute(
                "INSERT INTO revoked_jwts (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING",
                jti,
                expires_at,
            )

    async def contains(self, jti: str) -> bool:
        return bool(await self._db.pool.fetchval("SELECT 1 FROM revoked_jwts WHERE jti = $1", jti))
