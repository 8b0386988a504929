"""Live fan-out between server processes: Litestar's channels, in memory or over Redis pub/sub.

Over Redis, a broken connection must not end the fan-out for good: Litestar's channel workers stop at
the first error of the backend, so the backend here logs and carries on instead. A publish that fails
is dropped (the events are in the database, and followers read it when the stream goes quiet), and the
subscription is taken up again once Redis answers (redis-py subscribes its channels again on connect).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Iterable
from typing import Any

import structlog
from litestar.channels import ChannelsPlugin
from litestar.channels.backends.memory import MemoryChannelsBackend
from litestar.channels.backends.redis import RedisChannelsPubSubBackend
from redis.asyncio import Redis
from redis.exceptions import RedisError

__all__ = ["ResilientRedisBackend", "build_channels"]

log = structlog.get_logger(__name__)

_RETRY_S = 1.0
_OUTBOX_LIMIT = 20_000


class ResilientRedisBackend(RedisChannelsPubSubBackend):
    """Litestar's Redis pub/sub backend, carrying on through Redis errors, and publishing in pipelines:
    the plugin hands it one message at a time and waits for each, which caps a busy server at one
    Redis round trip per message. Here `publish` only queues; one flusher sends whatever has piled up
    in a single pipeline, in order."""

    def __init__(self, *, redis: Redis) -> None:
        super().__init__(redis=redis)
        self._outbox: list[tuple[bytes, list[str]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def publish(self, data: bytes, channels: Iterable[str]) -> None:
        if len(self._outbox) >= _OUTBOX_LIMIT:
            # Redis is down or far behind: the oldest go (followers read the database when quiet).
            del self._outbox[: len(self._outbox) // 2]
            log.warning("channels.outbox_trimmed", kept=len(self._outbox))
        self._outbox.append((data, list(channels)))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        while self._outbox:
            batch, self._outbox = self._outbox, []
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for data, channels in batch:
                        for channel in channels:
                            pipe.publish(channel, data)
                    await pipe.execute()
            except (RedisError, OSError) as exc:
                log.warning("channels.publish_failed", dropped=len(batch), error=f"{exc.__class__.__name__}: {exc}")

    async def on_shutdown(self) -> None:
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        await super().on_shutdown()

    async def subscribe(self, channels: Iterable[str]) -> None:
        try:
            await super().subscribe(channels)
        except (RedisError, OSError) as exc:
            # Kept in the PubSub's channel list: subscribed for real when the connection comes back.
            log.warning("channels.subscribe_failed", error=f"{exc.__class__.__name__}: {exc}")

    async def unsubscribe(self, channels: Iterable[str]) -> None:
        try:
            await super().unsubscribe(channels)
        except (RedisError, OSError) as exc:
            log.warning("channels.unsubscribe_failed", error=f"{exc.__class__.__name__}: {exc}")

    async def stream_events(self) -> AsyncGenerator[tuple[str, Any], None]:
        while True:
            try:
                async for item in super().stream_events():
                    yield item
            except (RedisError, OSError) as exc:
                log.warning("channels.stream_broken", error=f"{exc.__class__.__name__}: {exc}")
                await asyncio.sleep(_RETRY_S)


def build_channels(redis: Redis | None) -> ChannelsPlugin:
    """In-process fan-out, or Redis pub/sub when several server processes share the work."""
    backend: Any = ResilientRedisBackend(redis=redis) if redis is not None else MemoryChannelsBackend()
    # A slow reader's backlog drops its oldest events instead of slowing the writer; the reader
    # notices the jump in seq and reads what it missed from the database.
    return ChannelsPlugin(backend=backend, arbitrary_channels_allowed=True, subscriber_max_backlog=2000,
                          subscriber_backlog_strategy="dropleft")
