"""Helpers for the browser tests: the app on a real HTTP port, sessions, screenshots, API set-up.

The server runs under uvicorn in its own thread (and event loop), with the test database and the
fake agent image, exactly as `aicode serve` would run it. Screenshots go to test-artifacts/browser/.
The fixtures that use these live in tests/browser_fixtures.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from playwright.async_api import Browser, BrowserContext, Locator, Page, expect

from aicode.app import create_app
from aicode.settings import Settings
from tests.cli_support import listening_socket
from tests.conftest import ADMIN

__all__ = [
    "ARTIFACTS", "DOCS_SCREENSHOTS", "TERMINAL", "LiveServer", "Session", "TcpProxy", "api_headers",
    "make_member", "new_session", "ready_workspace", "screenshot", "sign_in", "task_id_from_url",
    "wait_for_task",
]

TERMINAL = {"succeeded", "failed", "cancelled", "interrupted"}

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "browser"
DOCS_SCREENSHOTS = ROOT / "docs" / "screenshots"

expect.set_options(timeout=20_000)


class LiveServer:
    """create_app(settings) served by uvicorn on 127.0.0.1:<a port of its own> in a background thread."""

    def __init__(self, settings: Settings) -> None:
        self._socket = listening_socket()
        self.port = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        app = create_app(dataclasses.replace(settings, port=self.port))
        # websockets-sansio: the legacy websockets protocol warns on import, and warnings are errors here.
        # timeout_keep_alive: longer than httpx's 5 s keep-alive, so the server never closes a connection the
        # test's API client is about to reuse (a ReadError on a loaded machine).
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None, access_log=False,
                                lifespan="on", ws="websockets-sansio", timeout_graceful_shutdown=5,
                                timeout_keep_alive=30)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]},
                                        name=f"uvicorn-{self.port}", daemon=True)

    async def start(self) -> None:
        self._thread.start()
        async with asyncio.timeout(60):
            while not self._server.started:
                if not self._thread.is_alive():
                    raise RuntimeError("the server thread ended before it started listening")
                await asyncio.sleep(0.05)

    async def stop(self) -> None:
        self._server.should_exit = True
        await asyncio.to_thread(self._thread.join, 60)
        self._socket.close()


class TcpProxy:
    """A TCP relay in front of the server whose open connections the test can cut: a real network drop.

    (Chromium's offline emulation blocks new requests but leaves a running EventSource stream alone.)
    """

    def __init__(self, upstream_port: int) -> None:
        self._upstream_port = upstream_port
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.url = ""

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._upstream_port)
        self._writers.update((writer, up_writer))
        pumps = [asyncio.create_task(self._pump(reader, up_writer)), asyncio.create_task(self._pump(up_reader, writer))]
        self._tasks.update(pumps)
        await asyncio.gather(*pumps, return_exceptions=True)
        self._tasks.difference_update(pumps)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def cut(self) -> int:
        """Abort every open connection, as a network drop would; answers how many there were."""
        writers = list(self._writers)
        for writer in writers:
            writer.transport.abort()
        return len(writers)

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@dataclass
class Session:
    """One signed-in (or not yet) browser context and page, with an API client on the same server."""

    server: LiveServer
    context: BrowserContext
    page: Page
    api: httpx.AsyncClient
    errors: list[str] = field(default_factory=list)

    async def close(self) -> None:
        await self.context.close()


async def new_session(browser: Browser, server: LiveServer, *, via: TcpProxy | None = None, **options: Any) -> Session:
    """A fresh browser context (its own cookies) whose page errors and CSP violations are collected."""
    options.setdefault("viewport", {"width": 1280, "height": 900})
    context = await browser.new_context(base_url=via.url if via else server.url, **options)
    page = await context.new_page()
    session = Session(server=server, context=context, page=page, api=httpx.AsyncClient(base_url=server.url))
    page.on("pageerror", lambda exc: session.errors.append(f"page error: {exc}"))
    page.on("console", lambda msg: session.errors.append(msg.text)
            if msg.type == "error" and "Content Security Policy" in msg.text else None)
    return session


async def sign_in(session: Session, username: str = ADMIN[0], password: str = ADMIN[1]) -> None:
    page = session.page
    await page.goto("/login")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()


async def screenshot(page: Page, name: str, *, docs: bool = False, full_page: bool = True,
                     element: Locator | None = None) -> Path:
    """Save a screenshot artifact; the README's two are copied to docs/screenshots/ when
    AICODE_UPDATE_SCREENSHOTS=1, so an ordinary run leaves the committed images alone."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    if element is not None:
        await element.screenshot(path=str(path))
    else:
        await page.screenshot(path=str(path), full_page=full_page)
    if docs and os.environ.get("AICODE_UPDATE_SCREENSHOTS") == "1":
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_SCREENSHOTS / f"{name}.png")
    return path


def task_id_from_url(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


# -- the same set-up the API tests use, over HTTP to the live server ---------------------------


async def api_headers(api: httpx.AsyncClient, username: str, password: str) -> dict[str, str]:
    response = await api.post("/api/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def make_member(api: httpx.AsyncClient, name: str, *, credential: bool = True) -> dict[str, str]:
    """A member account `name` (password `<name>-password`), with an Anthropic key stored."""
    admin = await api_headers(api, *ADMIN)
    created = await api.post("/api/admin/users", json={"username": name, "password": f"{name}-password"},
                             headers=admin)
    assert created.status_code == 201, created.text
    headers = await api_headers(api, name, f"{name}-password")
    if credential:
        stored = await api.put("/api/me/credentials/anthropic", json={"api_key": f"sk-test-{name}"}, headers=headers)
        assert stored.status_code == 204, stored.text
    return headers


async def ready_workspace(api: httpx.AsyncClient, headers: dict[str, str], repo: Path, name: str = "proj") -> dict:
    created = await api.post("/api/workspaces", json={"name": name, "repo_url": str(repo)}, headers=headers)
    assert created.status_code == 201, created.text
    async with asyncio.timeout(30):
        while True:
            body = (await api.get(f"/api/workspaces/{created.json()['id']}", headers=headers)).json()
            if body["status"] != "cloning":
                assert body["status"] == "ready", body
                return body
            await asyncio.sleep(0.1)


async def wait_for_task(api: httpx.AsyncClient, headers: dict[str, str], task_id: str, statuses: set[str],
                        timeout: float = 60) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            task = (await api.get(f"/api/tasks/{task_id}", headers=headers)).json()
            if task["status"] in statuses:
                return task
            await asyncio.sleep(0.1)
