"""Notification webhooks in a real Chromium: added on the Settings page, tested from there, and called when a
task ends."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from tests.browser_support import (
    TERMINAL,
    LiveServer,
    Session,
    api_headers,
    make_member,
    new_session,
    ready_workspace,
    sign_in,
    wait_for_task,
)
from tests.fakes.webhook_receiver import Receiver

pytest_plugins = ["tests.browser_fixtures"]
pytestmark = pytest.mark.timeout(180)


@pytest.fixture
async def alice(browser: Browser, live: LiveServer) -> Session:
    session = await new_session(browser, live)
    await make_member(session.api, "alice")
    await sign_in(session, "alice", "alice-password")
    yield session
    await session.api.aclose()
    await session.close()
    assert session.errors == []


async def test_a_webhook_added_in_settings_gets_the_test_and_the_tasks_outcome(alice: Session,
                                                                                source_repo: Path) -> None:
    page = alice.page
    async with Receiver() as receiver:
        await page.goto("/settings")
        section = page.locator("section", has=page.get_by_role("heading", name="Notifications", exact=True))
        await section.get_by_label("Webhook URL").fill(f"{receiver.url}/hooks/SeCrEt")
        await section.get_by_label("Format").select_option("slack")
        await section.get_by_label("waits for input").uncheck()
        await section.get_by_role("button", name="Add webhook").click()
        await expect(page.get_by_role("status")).to_contain_text("Notification webhook added")
        row = page.get_by_test_id("notifications").locator("tbody tr")
        await expect(row).to_have_count(1)
        await expect(row).to_contain_text(f"http://127.0.0.1:{receiver.port}/…")
        await expect(row).to_contain_text("succeeded, failed")
        assert "SeCrEt" not in await page.content()
        await row.get_by_role("button", name="Send test").click()
        await expect(page.get_by_test_id("hook-last-status")).to_contain_text("200")
        assert "test notification" in receiver.bodies("/hooks/SeCrEt")[0]["text"]

        headers = await api_headers(alice.api, "alice", "alice-password")
        workspace = await ready_workspace(alice.api, headers, source_repo)
        created = await alice.api.post(f"/api/workspaces/{workspace['id']}/tasks", json={"prompt": "@say hi"},
                                       headers=headers)
        await wait_for_task(alice.api, headers, created.json()["id"], TERMINAL)
        await receiver.wait_for(lambda: len(receiver.bodies("/hooks/SeCrEt")) == 2)
        assert "Task succeeded: @say hi" in receiver.bodies("/hooks/SeCrEt")[1]["text"]
