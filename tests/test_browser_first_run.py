"""The first hour in a real Chromium: the checklist, task forms that wait for a model key (saying where to add
one) instead of starting a task that fails, the overview's New task form, lists that update without a reload,
and the desktop notification when your task ends."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from tests.browser_support import (
    TERMINAL,
    LiveServer,
    make_member,
    new_session,
    ready_workspace,
    screenshot,
    sign_in,
    task_id_from_url,
    wait_for_task,
)

pytest_plugins = ["tests.browser_fixtures"]
pytestmark = pytest.mark.timeout(180)


async def test_without_a_key_the_forms_wait_and_point_at_settings_then_the_overview_runs_a_task(
    browser: Browser, live: LiveServer, source_repo: Path,
) -> None:
    session = await new_session(browser, live)
    try:
        page = session.page
        dana = await make_member(session.api, "dana", credential=False)
        await sign_in(session, "dana", "dana-password")
        checklist = page.get_by_test_id("first-run")
        await expect(checklist).to_be_visible()
        await expect(checklist.locator('[data-step="2"]')).to_have_class("todo")
        await expect(checklist.get_by_role("link", name="Add a key")).to_have_attribute("href", "/settings#keys-head")
        await expect(checklist.get_by_role("link", name="Add a workspace")).to_be_visible()
        await screenshot(page, "first-run-checklist")

        workspace = await ready_workspace(session.api, dana, source_repo)
        await page.goto(f"/workspaces/{workspace['id']}")
        run = page.get_by_role("button", name="Run task")
        await expect(run).to_be_disabled()
        await expect(page.get_by_role("button", name="New session")).to_be_disabled()
        notice = page.locator("[data-no-key]")
        await expect(notice).to_be_visible()
        await expect(notice).to_contain_text("no Anthropic key")
        await expect(notice.get_by_role("link")).to_have_attribute("href", "/settings#keys-head")
        # Ctrl+Enter does not go around the disabled button.
        await page.get_by_label("Prompt").fill("@say hi")
        await page.get_by_label("Prompt").press("Control+Enter")
        await page.wait_for_timeout(300)
        assert re.search(r"/workspaces/[0-9a-f-]{36}$", page.url)

        await page.goto("/")
        form = page.locator("form[data-key-check]")
        await expect(form.get_by_role("button", name="Run task")).to_be_disabled()
        await expect(form.locator("[data-no-key]")).to_contain_text("no Anthropic key for proj")

        stored = await session.api.put("/api/me/credentials/anthropic", json={"api_key": "sk-test-dana"}, headers=dana)
        assert stored.status_code == 204
        await page.reload()
        await expect(page.get_by_test_id("first-run").locator('[data-step="2"]')).to_have_class("done")
        await expect(form.locator("[data-no-key]")).to_be_hidden()
        # Codex has no key: choosing it disables the form again, naming the provider.
        await form.get_by_label("Agent").select_option("codex")
        await expect(form.locator("[data-no-key]")).to_contain_text("no OpenAI key")
        await expect(form.get_by_role("button", name="Run task")).to_be_disabled()
        await form.get_by_label("Agent").select_option("claude")
        await form.get_by_label("Prompt").fill("@say first task")
        await form.get_by_role("button", name="Run task").click()
        await page.wait_for_url(re.compile(r"/tasks/[0-9a-f-]{36}$"))
        task = await wait_for_task(session.api, dana, task_id_from_url(page.url), TERMINAL)
        assert task["status"] == "succeeded" and task["workspace_id"] == workspace["id"]
        await page.goto("/")
        await expect(page.get_by_test_id("first-run")).to_have_count(0)
        # A wrong address is a page too, not JSON.
        missing = await page.goto("/tasks/00000000-0000-4000-8000-000000000000")
        assert missing is not None and missing.status == 404
        assert missing.headers["content-type"].startswith("text/html")
        await expect(page.get_by_role("link", name=re.compile("overview", re.I)).first).to_be_visible()
        assert session.errors == []
    finally:
        await session.api.aclose()
        await session.close()


async def test_lists_update_without_a_reload_and_an_ended_task_notifies_its_author(
    browser: Browser, live: LiveServer, source_repo: Path,
) -> None:
    session = await new_session(browser, live)
    try:
        page = session.page
        erin = await make_member(session.api, "erin")
        workspace = await ready_workspace(session.api, erin, source_repo)
        # The page in the background (no focus), notifications granted and turned on: the one from the task shows.
        await session.context.grant_permissions(["notifications"])
        await page.add_init_script("""
            window.__shown = [];
            window.Notification = class { constructor(title, options) { window.__shown.push([title, options.body]); }
                                           static get permission() { return "granted"; } };
            document.hasFocus = () => false;
        """)
        await sign_in(session, "erin", "erin-password")
        await page.evaluate("localStorage.setItem('aicode.notifications', 'on')")
        await page.goto(f"/workspaces/{workspace['id']}")
        await expect(page.locator("body[data-lists-live=on]")).to_have_count(1)
        await expect(page.locator("[data-live-list=tasks]")).to_contain_text("No tasks yet")
        marker = "@sleep 1\n@say live list row"
        submitted = await session.api.post(f"/api/workspaces/{workspace['id']}/tasks", json={"prompt": marker},
                                           headers=erin)
        assert submitted.status_code == 202, submitted.text
        row = page.locator("[data-live-list=tasks] tr", has_text="live list row")
        await expect(row).to_be_visible()
        await expect(row.locator("[data-status-badge]")).to_have_text("succeeded", timeout=30_000)
        shown = await page.evaluate("window.__shown")
        assert any(title == "Task succeeded" for title, _ in shown), shown
        # The overview's lists too; someone else's task in a workspace erin does not see never shows.
        await page.goto("/")
        await expect(page.locator("body[data-lists-live=on]")).to_have_count(1)
        frank = await make_member(session.api, "frank")
        other = await ready_workspace(session.api, frank, source_repo, name="franks")
        await session.api.post(f"/api/workspaces/{other['id']}/tasks", json={"prompt": "@say secret frank"},
                               headers=frank)
        again = await session.api.post(f"/api/workspaces/{workspace['id']}/tasks", json={"prompt": "@say second"},
                                       headers=erin)
        second = again.json()["id"]
        await expect(page.locator("[data-live-list=recent]")).to_contain_text("@say second")
        await wait_for_task(session.api, erin, second, TERMINAL)
        await expect(page.locator(f"[data-live-list=recent] a[href='/tasks/{second}']")).to_be_visible()
        assert "secret frank" not in await page.content()
        assert session.errors == []
    finally:
        await session.api.aclose()
        await session.close()


async def test_the_task_list_stream_sends_only_what_the_reader_may_see(live: LiveServer, source_repo: Path) -> None:
    import asyncio
    import json

    import httpx

    async with httpx.AsyncClient(base_url=live.url, timeout=30) as api:
        gail = await make_member(api, "gail")
        hank = await make_member(api, "hank")
        mine = await ready_workspace(api, gail, source_repo, name="gails")
        theirs = await ready_workspace(api, hank, source_repo, name="hanks")
        seen: list[dict] = []
        async with api.stream("GET", "/api/tasks/changes", headers=gail) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.aiter_lines()

            async def next_event() -> tuple[str, str]:
                kind = data = ""
                async for line in lines:
                    if line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: "):
                        data = line[6:]
                    elif line == "" and kind:
                        return kind, data
                raise AssertionError("the stream ended")

            assert (await next_event())[0] == "listening"
            await api.post(f"/api/workspaces/{theirs['id']}/tasks", json={"prompt": "@say not for gail"}, headers=hank)
            task = (await api.post(f"/api/workspaces/{mine['id']}/tasks", json={"prompt": "@say hi"},
                                   headers=gail)).json()
            async with asyncio.timeout(30):
                while not seen or seen[-1]["status"] != "succeeded":
                    kind, data = await next_event()
                    assert kind == "task"
                    seen.append(json.loads(data))
        assert {change["id"] for change in seen} == {task["id"]}
        assert [change["status"] for change in seen] == ["queued", "running", "succeeded"]
        assert seen[0]["workspace_id"] == mine["id"]
        unauthenticated = await api.get("/api/tasks/changes")
        assert unauthenticated.status_code == 401
        # timeout_s ends the stream (a client reconnects), after its `listening` event.
        ended = await api.get("/api/tasks/changes", params={"timeout_s": 1}, headers=gail)
        assert ended.status_code == 200 and "event: listening" in ended.text
