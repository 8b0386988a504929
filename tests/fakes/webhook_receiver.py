"""A webhook receiver on 127.0.0.1 for the notification tests: it records what aicode posts to it."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tests.fakes.threaded_server import ThreadedServer

__all__ = ["Receiver"]


class Receiver(ThreadedServer):
    """Records each POST's path and JSON body; `fail_with`/`fail_times`/`hang` as every threaded fake."""

    thread_name = "webhook-receiver"

    def __init__(self) -> None:
        super().__init__()
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.attempts = 0

    def _application(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._receive)
        return app

    async def _observe(self, request: web.Request) -> None:
        self.attempts += 1

    async def _receive(self, request: web.Request) -> web.Response:
        self.received.append((request.path, await request.json()))
        return web.Response(status=200, text="ok")

    def bodies(self, path: str) -> list[dict[str, Any]]:
        return [body for got, body in self.received if got == path]
