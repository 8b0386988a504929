"""Open streams hear when their reader's access changes, and end when it no longer holds.

A disable, a password reset, a role change or a removal from a workspace publishes a note on the
person's own channel (`access:<user id>`, through the same channels as task events, so it reaches
streams on every server process). Each open stream of theirs then asks again whether they may
still see what it shows, and ends if not.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar
from uuid import UUID

import structlog
from litestar.channels import ChannelsPlugin

__all__ = ["AccessChanges"]

log = structlog.get_logger(__name__)

T = TypeVar("T")
_END = object()
_CHANGED = object()


def _channel(user_id: UUID) -> str:
    return f"access:{user_id}"


class AccessChanges:
    def __init__(self, channels: ChannelsPlugin) -> None:
        self._channels = channels

    def publish(self, user_id: UUID) -> None:
        """`user_id`'s access may have changed: their open streams check again."""
        self._channels.publish(b"changed", _channel(user_id))

    async def guard(self, user_id: UUID, stream: AsyncIterator[T],
                    still_allowed: Callable[[], Awaitable[bool]]) -> AsyncIterator[T]:
        """The items of `stream`, ending early once a change for `user_id` makes `still_allowed` false."""
        items: asyncio.Queue[object] = asyncio.Queue(maxsize=256)

        async def pump() -> None:
            try:
                async for item in stream:
                    await items.put(item)
            finally:
                await items.put(_END)

        async with self._channels.start_subscription([_channel(user_id)]) as subscriber:

            async def listen() -> None:
                async for _ in subscriber.iter_events():
                    await items.put(_CHANGED)

            tasks = [asyncio.create_task(pump()), asyncio.create_task(listen())]
            try:
                while (item := await items.get()) is not _END:
                    if item is _CHANGED:
                        if not await still_allowed():
                            log.info("stream.ended_by_access_change", user_id=str(user_id))
                            return
                        continue
                    yield item  # type: ignore[misc]
                if tasks[0].done() and tasks[0].exception() is not None:
                    raise tasks[0].exception()  # type: ignore[misc]
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
