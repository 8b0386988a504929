"""`aicode serve` and `aicode migrate`."""

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
