"""`aicode users create NAME [--admin]`: make an account from the server's shell."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from typing import Any

import msgspec

from aicode.auth.schemas import UserCreate
from aicode.errors import AicodeError
from aicode.logging import configure_logging
from aicode.settings import Settings

__all__ = ["register"]


def register(commands: Any) -> None:
    users = commands.add_parser("users", help="manage accounts")
    actions = users.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="create a user (password from a prompt, or one line of stdin)")
    create.add_argument("name")
    create.add_argument("--admin", action="store_true", help="give the user the admin role")
    create.set_defaults(run=run_create)


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != first:
            raise ValueError("the passwords do not match")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def run_create(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    configure_logging(settings.log_format, "warning")
    try:
        data = msgspec.convert({"username": args.name, "password": _read_password(), "admin": args.admin}, UserCreate)
    except (ValueError, msgspec.ValidationError) as exc:
        print(f"aicode: {exc}", file=sys.stderr)
        return 2

    # Imported here: the server side (Litestar, asyncpg, argon2) would slow every client command.
    from aicode.auth.repo import RevokedJwtRepo, TokenRepo, UserRepo
    from aicode.auth.service import AuthService
    from aicode.db.connect import operator_database

    async def create() -> str:
        async with operator_database(settings) as database:
            service = AuthService(UserRepo(database), TokenRepo(database), RevokedJwtRepo(database),
                                  jwt_key="unused", token_ttl_s=60)
            user = await service.create_user(data.username, data.password, admin=data.admin)
            return user.username

    try:
        name = asyncio.run(create())
    except AicodeError as exc:
        print(f"aicode: {exc.detail}", file=sys.stderr)
        return 1
    print(f"created {'admin' if data.admin else 'user'} {name}")
    return 0
