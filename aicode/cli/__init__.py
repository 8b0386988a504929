"""The `aicode` command: operator commands (serve, migrate, users) and the client (login, run, logs …)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from aicode import __version__
from aicode.cli import backup, client, server, users
from aicode.settings import SettingsError

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aicode", description="Run AI coding agents on your team's repositories.")
    parser.add_argument("--version", action="version", version=f"aicode {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    server.register(commands)
    users.register(commands)
    backup.register(commands)
    client.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except SettingsError as exc:
        print(f"aicode: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
