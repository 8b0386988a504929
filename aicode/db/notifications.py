"""PostgreSQL LISTEN on one connection of its own, kept open for the server's life.

Nodes wake each other through NOTIFY: a queued turn, a cancel. A notification sent while the
connection was down is lost, so `on_connect` runs after every (re)connect: the listener's owner
looks at the database again instead of trusting that nothing happened.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import structlog

from aicode.background import BackgroundTasks
from aicode.db.pool import Database

__all__ = ["Notifications"]

log = structlog.get_logger(__name__)

_RETRY_S = 1.0

Handler = Callable[[str], None]


class Notifications:
    def __init__(self, database: Database, background: BackgroundTasks) -> None:
        self._database = database
        self._background = background
        self._handlers: dict[str, Handler] = {}
        self._on_connect: list[Callable[[], None]] = []
        self._conn: asyncpg.Connection | None = None
        self._listening = asyncio.Event()
        self._closing = False

    def listen(self, channel: str, handler: Handler) -> None:
        """Call `handler(payload)` for each NOTIFY on `channel`; register before `start`."""
        self._handlers[channel] = handler

    def on_connect(self, callback: Callable[[], None]) -> None:
        self._on_connect.append(callback)

    async def start(self) -> None:
        """Listen from now on; returns once the first connection listens (or failed once)."""
        self._background.spawn(self._keep_listening(), name="pg-listen")
        await self._listening.wait()

    async def close(self) -> None:
        self._closing = True
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.close()

    async def _keep_listening(self) -> None:
        while not self._closing:
            lost = asyncio.Event()
            try:
                self._conn = await asyncpg.connect(self._database.url)
                self._conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                for channel, handler in self._handlers.items():
                    await self._conn.add_listener(channel, _adapter(handler))
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("notifications.connect_failed", error=str(exc))
                self._listening.set()
                await asyncio.sleep(_RETRY_S)
                continue
            self._listening.set()
            for callback in self._on_connect:
                callback()
            await lost.wait()
            if self._closing:
                return
            log.warning("notifications.connection_lost")
            await asyncio.sleep(_RETRY_S)


def _adapter(handler: Handler) -> Callable[[asyncpg.Connection, int, str, str], None]:
    def deliver(_conn: asyncpg.Connection, _pid: int, _channel: str, payload: str) -> None:
        handler(payload)
    return deliver
