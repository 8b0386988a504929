"""`aicode serve`, `aicode migrate` and `aicode gc`."""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any, TypedDict

from aicode.logging import configure_logging
from aicode.settings import Settings

__all__ = ["register"]


def register(commands: Any) -> None:
    serve = commands.add_parser("serve", help="run the server (AICODE_* settings apply)")
    serve.add_argument("--host", help="listen address (default: AICODE_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default: AICODE_PORT or 8000)")
    serve.set_defaults(run=run_serve)
    migrate = commands.add_parser("migrate", help="apply database migrations and exit")
    migrate.set_defaults(run=run_migrate)
    gc = commands.add_parser("gc", help="remove ended tasks' working copies and stored state after an age, now")
    gc.add_argument("--older-than-days", type=int, metavar="N",
                    help="tasks that ended more than N days ago (default: AICODE_RETENTION_DAYS)")
    gc.add_argument("--json", action="store_true", help="print what was freed as JSON")
    gc.set_defaults(run=run_gc)


class TlsOptions(TypedDict, total=False):
    ssl_certfile: str
    ssl_keyfile: str


def tls_options(settings: Settings) -> TlsOptions:
    """uvicorn's options for HTTPS in-process (AICODE_TLS_CERT / AICODE_TLS_KEY), none for plain http."""
    if settings.tls_cert is None or settings.tls_key is None:
        return {}
    return {"ssl_certfile": str(settings.tls_cert), "ssl_keyfile": str(settings.tls_key)}


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from aicode.app import create_app

    settings = Settings.from_env()
    configure_logging(settings.log_format, settings.log_level)
    host = args.host or settings.host
    port = settings.port if args.port is None else args.port
    app = create_app(settings)
    # uvicorn re-raises the signal that stopped it once shutdown is done; a no-op handler lets a
    # clean shutdown on SIGTERM end with exit code 0 rather than death by that signal.
    signal.signal(signal.SIGTERM, lambda *_: None)
    # uvicorn's own logging config and access log are off: ours (with request ids) replaces them.
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False, lifespan="on",
                timeout_graceful_shutdown=10, **tls_options(settings))
    return 0


def run_migrate(_: argparse.Namespace) -> int:
    import asyncpg

    from aicode.db.connect import database_url
    from aicode.db.migrations import apply_migrations

    settings = Settings.from_env()
    configure_logging(settings.log_format, settings.log_level)

    async def migrate() -> list[str]:
        async with database_url(settings) as url:
            conn = await asyncpg.connect(url)
            try:
                return await apply_migrations(conn)
            finally:
                await conn.close()

    applied = asyncio.run(migrate())
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))
    return 0


def run_gc(args: argparse.Namespace) -> int:
    """Retention on demand, on this node's data dir and the shared database; says what it freed."""
    import json
    import sys

    from aicode.db.connect import operator_database
    from aicode.storage.identity import server_identities
    from aicode.storage.layout import DataLayout
    from aicode.tasks.retention import CollectReport, Retention
    from aicode.tasks.state_repo import TaskStateRepo

    settings = Settings.from_env()
    configure_logging(settings.log_format, "warning")
    days = args.older_than_days if args.older_than_days is not None else settings.retention_days
    if days is None or days < 0:
        print("aicode: give --older-than-days N (0 or more), or set AICODE_RETENTION_DAYS", file=sys.stderr)
        return 2
    layout = DataLayout(settings.data_dir, server_identities(settings.agent_uid, settings.agent_gid,
                                                            settings.git_uid, settings.git_gid))
    layout.prepare()

    async def collect() -> CollectReport:
        async with operator_database(settings) as database:
            return await Retention(layout, TaskStateRepo(database)).collect(days)

    report = asyncio.run(collect())
    if args.json:
        print(json.dumps({"older_than_days": days, "working_copies": report.working_copies,
                          "working_copy_bytes": report.working_copy_bytes, "central_states": report.central_states,
                          "central_bytes": report.central_bytes, "freed_bytes": report.freed_bytes}))
    else:
        print(f"freed {report.freed_bytes / 1024 / 1024:.1f} MB: {report.working_copies} working "
              f"cop{'y' if report.working_copies == 1 else 'ies'} on this node "
              f"({report.working_copy_bytes / 1024 / 1024:.1f} MB) and the stored state of {report.central_states} "
              f"task{'' if report.central_states == 1 else 's'} ({report.central_bytes / 1024 / 1024:.1f} MB), "
              f"of tasks that ended more than {days} day{'' if days == 1 else 's'} ago")
    return 0
