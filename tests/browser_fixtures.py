"""Fixtures of the browser tests, a pytest plugin: test modules name it in `pytest_plugins`.

`browser` is Debian's Chromium (/usr/bin/chromium, installed by .ci/run) driven by Playwright, launched
once per session with flags that keep it off the network; nothing is downloaded. `live` is the app
served on a free port for one test, with that test's database and the fake agent image.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from aicode.settings import Settings
from tests.browser_support import LiveServer

__all__ = ["CHROMIUM", "browser", "live"]

CHROMIUM = os.environ.get("AICODE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install chromium` (bash .ci/run installs it)")
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def live(task_settings: Settings) -> AsyncIterator[LiveServer]:
    server = LiveServer(task_settings)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
