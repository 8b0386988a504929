"""An aiohttp application served on 127.0.0.1 from a thread and event loop of its own: the base of the forge fakes.

Why a thread (as `identity_provider` has, unlike `mock_anthropic`): Litestar's AsyncTestClient runs the app
through a blocking portal, so the test's event loop is stuck while the app handles a request. A fake served in
the test's loop could not answer an app that pushes a branch or opens a pull request *during* a request: the
test would hang until its timeout. Served from its own thread, a fake answers whoever calls it, whenever.

Tests still use it as `async with Fake() as fake:` and read its state as plain attributes (list appends and
attribute stores are atomic under the GIL; a test reads after the call it made has returned). To wait for
something a background worker of the app does, use `await fake.wait_for(lambda: ...)`.

Every subclass gets the failure switches of error-path tests: `fail_with = 502` answers every request with
that status (`fail_times = N`: only the next N requests), `hang = True` holds every request open until
`hang` is cleared or the server closes (a client sees its own timeout).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, Self

from aiohttp import web

__all__ = ["ThreadedServer"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ThreadedServer:
    """Subclasses build the application (`_application`) and may shape the failure answer (`_failure`)."""

    thread_name = "fake-server"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.fail_with: int | None = None  # answer every request with this status (see _failure)
        self.fail_times: int | None = None  # with fail_with: fail only this many more requests (None: all)
        self.hang: bool = False  # hold every request open until cleared or closed
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None

    # -- for subclasses -----------------------------------------------------------
    def _application(self) -> web.Application:
        raise NotImplementedError

    def _runner_options(self) -> dict[str, Any]:
        """Extra keyword arguments of the AppRunner (handed down to aiohttp's request handler)."""
        return {}

    async def _observe(self, request: web.Request) -> None:
        """Called with every request before any failure switch or handler (the forge fakes record it here)."""

    def _failure(self, request: web.Request, status: int) -> web.StreamResponse:
        """The answer to a request while `fail_with` is set."""
        return web.Response(status=status, text=f"fake failure {status}")

    # -- addresses ------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- waiting -------------------------------------------------------------------
    async def wait_for(self, predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.02) -> None:
        """Poll `predicate` (e.g. `lambda: fake.pulls`) until it is truthy; TimeoutError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{type(self).__name__}: condition not met within {timeout}s")
            await asyncio.sleep(interval)

    # -- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        """Listen (in the server's own thread); returns once it accepts connections."""
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._serve, args=(ready, failure), name=self.thread_name,
                                        daemon=True)
        self._thread.start()
        await asyncio.to_thread(ready.wait, 30)
        if failure:
            self._thread.join(5)
            self._thread = None
            raise failure[0]

    async def close(self) -> None:
        """Stop listening; requests still held open by `hang` are answered 503 first."""
        if self._loop is not None and self._stop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            await asyncio.to_thread(self._thread.join, 30)
        self._loop = self._thread = self._stop = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _serve(self, ready: threading.Event, failure: list[BaseException]) -> None:
        try:
            asyncio.run(self._main(ready))
        except BaseException as exc:  # a failure to listen is handed to start()
            failure.append(exc)
        finally:
            ready.set()

    async def _main(self, ready: threading.Event) -> None:
        self._stop = asyncio.Event()
        app = self._application()
        app.middlewares.append(self._failures)
        # A short shutdown_timeout: a client that went away must not hold up close().
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5, **self._runner_options())
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
            self.port = runner.addresses[0][1]
            self._loop = asyncio.get_running_loop()
            ready.set()
            await self._stop.wait()
        finally:
            await runner.cleanup()

    @web.middleware
    async def _failures(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        await self._observe(request)
        if self.hang and self._stop is not None:
            while self.hang and not self._stop.is_set():
                try:
                    await asyncio.wait_for(self._stop.wait(), 0.05)
                except TimeoutError:
                    pass
            if self._stop.is_set():
                return web.Response(status=503, text="fake server closing")
        status = self.fail_with
        if status is not None:
            if self.fail_times is not None:
                self.fail_times -= 1
                if self.fail_times <= 0:
                    self.fail_with = self.fail_times = None
            return self._failure(request, status)
        return await handler(request)
