"""Live sessions in a real Chromium: started from the workspace page, talked to from the prompt box (the
answer typed in live, then kept), interrupted, ended and started again; and text typed live on a task page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import Browser, Locator, Page, expect

from tests.browser_support import (
    LiveServer,
    Session,
    api_headers,
    make_member,
    new_session,
    ready_workspace,
    screenshot,
    sign_in,
    task_id_from_url,
    wait_for_task,
)

# The `browser` and `live` fixtures.
pytest_plugins = ["tests.browser_fixtures"]
pytestmark = pytest.mark.timeout(180)

# Every provisional (typing) entry the feed ever held, with the text it had when it went.
WATCH_TYPING = """() => {
  window.typed = [];
  new MutationObserver((changes) => {
    for (const change of changes) {
      for (const node of change.addedNodes) {
        if (node.classList && node.classList.contains("ev-typing")) window.typed.push(node);
      }
    }
  }).observe(document.getElementById("feed"), { childList: true });
}"""


@pytest.fixture
async def alice(browser: Browser, live: LiveServer) -> Session:
    session = await new_session(browser, live)
    await make_member(session.api, "alice")
    await sign_in(session, "alice", "alice-password")
    yield session
    await session.api.aclose()
    await session.close()
    assert session.errors == []


async def start_session(session: Session, repo: Path, prompt: str = "") -> str:
    """A session started from the workspace page's form; answers its id once its page is open."""
    headers = await api_headers(session.api, "alice", "alice-password")
    workspace = await ready_workspace(session.api, headers, repo)
    page = session.page
    await page.goto(f"/workspaces/{workspace['id']}")
    if prompt:
        await page.get_by_label("Prompt").fill(prompt)
    await page.get_by_role("button", name="New session").click()
    await page.wait_for_url(re.compile(r"/tasks/[0-9a-f-]{36}$"))
    return task_id_from_url(page.url)


async def say(page: Page, prompt: str) -> None:
    box = page.get_by_label("Your prompt")
    await box.fill(prompt)
    await box.press("Enter")


def state(page: Page) -> Locator:
    return page.locator("[data-session-state]")


async def test_a_prompt_typed_in_the_box_is_answered_live_and_the_session_waits_for_the_next(
    alice: Session, source_repo: Path
) -> None:
    page = alice.page
    task_id = await start_session(alice, source_repo)  # no first prompt: it waits for one
    await expect(page.get_by_role("heading", name="Live session")).to_be_visible()
    await expect(state(page)).to_have_text("Waiting for your prompt", timeout=60_000)
    await expect(page.get_by_role("button", name="Send follow-up")).to_be_hidden()
    await page.evaluate(WATCH_TYPING)
    box = page.get_by_label("Your prompt")
    await box.fill("@say hello")
    await box.press("Shift+Enter")  # a new line, not a send
    await box.press_sequentially("@write greeting.txt hi")
    await expect(box).to_have_value("@say hello\n@write greeting.txt hi")
    await box.press("Enter")
    await expect(box).to_have_value("")
    feed = page.locator("#feed")
    await expect(feed.locator(".ev-prompt", has_text="@write greeting.txt hi").locator(".ev-who")).to_have_text("alice")
    await expect(feed.locator(".ev-text", has_text="hello")).to_have_count(1)
    await expect(feed.locator(".ev-commit")).to_have_count(1)
    await expect(state(page)).to_have_text("Waiting for your prompt")
    # The answer came typed first: a provisional entry that the stored message then replaced.
    typed = await page.evaluate("() => window.typed.map((node) => [node.textContent, node.isConnected])")
    assert any(text.endswith("hello") for text, _ in typed), typed
    assert not any(connected for _, connected in typed), typed
    await expect(feed.locator(".ev-typing")).to_have_count(0)
    await say(page, "@say second answer")
    await expect(feed.locator(".ev-text", has_text="second answer")).to_be_visible()
    await expect(state(page)).to_have_text("Waiting for your prompt")
    await expect(page.locator("[data-field=turns]")).to_have_text("2")
    await screenshot(page, "session")
    headers = await api_headers(alice.api, "alice", "alice-password")
    task = (await alice.api.get(f"/api/tasks/{task_id}", headers=headers)).json()
    assert (task["kind"], task["status"], task["turns"]) == ("session", "running", 2)
    await page.get_by_role("button", name="End session").click()
    await wait_for_task(alice.api, headers, task_id, {"succeeded"})
    await page.get_by_role("navigation", name="Breadcrumb").get_by_role("link", name="proj").click()
    row = page.locator(f"tr[data-task-id='{task_id}']")
    await expect(row.get_by_role("link")).to_have_text("Live session")  # it had no first prompt
    await expect(row.locator(".kind-tag")).to_have_text("session")


async def test_interrupt_commits_the_partial_turn_and_the_session_waits_again(
    alice: Session, source_repo: Path
) -> None:
    page = alice.page
    task_id = await start_session(alice, source_repo, "@write partial.txt made before\n@sleep 30")
    await expect(page.locator("#feed .ev-tool", has_text="Write")).to_be_visible(timeout=60_000)
    await expect(state(page)).to_have_text("Working…")
    await page.get_by_role("button", name="Interrupt").click()
    await expect(page.locator("#feed .ev-commit")).to_contain_text("(partial)", timeout=30_000)
    await expect(page.locator("#feed .ev-notice", has_text="interrupted")).to_be_visible()
    await expect(state(page)).to_have_text("Waiting for your prompt")
    await expect(page.get_by_role("button", name="Interrupt")).to_be_hidden()
    await expect(page.locator("[data-diff-root] .file-list li")).to_have_count(1)
    headers = await api_headers(alice.api, "alice", "alice-password")
    assert (await alice.api.get(f"/api/tasks/{task_id}", headers=headers)).json()["status"] == "running"
    await say(page, "@say still here")
    await expect(page.locator("#feed .ev-text", has_text="still here")).to_be_visible()


async def test_end_session_ends_it_and_a_follow_up_starts_it_again(alice: Session, source_repo: Path) -> None:
    page = alice.page
    task_id = await start_session(alice, source_repo, "@say first")
    await expect(page.locator("#feed .ev-text", has_text="first")).to_be_visible(timeout=60_000)
    await expect(state(page)).to_have_text("Waiting for your prompt")
    await page.get_by_role("button", name="End session").click()
    await expect(page.locator("[data-field=status] .badge")).to_have_text("succeeded", timeout=30_000)
    await expect(state(page)).to_have_text("Ended")
    await expect(page.get_by_label("Your prompt")).to_be_hidden()
    follow = page.get_by_label("This session has ended: a prompt starts it again, where it left off")
    await follow.fill("@say back again")
    await page.get_by_role("button", name="Send follow-up").click()
    await expect(page.get_by_label("Your prompt")).to_be_visible()
    await expect(page.locator("#feed .ev-text", has_text="back again")).to_be_visible(timeout=60_000)
    await expect(state(page)).to_have_text("Waiting for your prompt")
    await expect(page.locator("#feed .ev-text", has_text="resumed session with 1 earlier turn")).to_be_visible()
    headers = await api_headers(alice.api, "alice", "alice-password")
    assert (await alice.api.get(f"/api/tasks/{task_id}", headers=headers)).json()["status"] == "running"
    await page.get_by_role("button", name="End session").click()
    await wait_for_task(alice.api, headers, task_id, {"succeeded"})


async def test_a_task_page_shows_the_text_as_it_is_typed_then_the_message_once(
    alice: Session, source_repo: Path
) -> None:
    page = alice.page
    headers = await api_headers(alice.api, "alice", "alice-password")
    workspace = await ready_workspace(alice.api, headers, source_repo)
    created = await alice.api.post(f"/api/workspaces/{workspace['id']}/tasks", headers=headers,
                                   json={"prompt": "@sleep 3\n@say typed as it comes"})
    await page.goto(f"/tasks/{created.json()['id']}")
    await page.evaluate(WATCH_TYPING)
    await expect(page.locator("[data-field=status] .badge")).to_have_text("succeeded", timeout=60_000)
    await expect(page.locator("#feed .ev-text", has_text="typed as it comes")).to_have_count(1)
    typed = await page.evaluate("() => window.typed.map((node) => [node.textContent, node.isConnected])")
    assert any(text.endswith("typed as it comes") for text, _ in typed), typed
    assert not any(connected for _, connected in typed), typed
