"""Reviewing a task's changes in the browser: inline comments sent to the agent, one turn's diff, the side by
side view, highlighting that keeps the agent's text as text, the folder tree and the keyboard shortcuts."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Dialog, Page, expect

from tests.browser_support import LiveServer, Session, api_headers, make_member, new_session, ready_workspace, sign_in

# The `browser` and `live` fixtures.
pytest_plugins = ["tests.browser_fixtures"]
pytestmark = pytest.mark.timeout(180)


@pytest.fixture
async def reviewer(browser: Browser, live: LiveServer) -> AsyncIterator[Session]:
    """Alice, signed in, with a workspace of her own."""
    session = await new_session(browser, live)
    await make_member(session.api, "alice")
    await sign_in(session, "alice", "alice-password")
    yield session
    await session.api.aclose()
    await session.close()
    assert session.errors == []


async def task_page(session: Session, repo: Path, prompt: str) -> Page:
    """A finished task of alice's that ran `prompt`, its page open."""
    headers = await api_headers(session.api, "alice", "alice-password")
    workspace = await ready_workspace(session.api, headers, repo)
    page = session.page
    await page.goto(f"/workspaces/{workspace['id']}")
    await page.get_by_label("Prompt").fill(prompt)
    await page.get_by_role("button", name="Run task").click()
    await page.wait_for_url(re.compile(r"/tasks/[0-9a-f-]{36}$"))
    await expect(page.locator("[data-field=status] .badge")).to_have_text("succeeded", timeout=60_000)
    return page


def section(page: Page, path: str):
    return page.locator(f'[data-diff-root] .diff-file[data-path="{path}"]')


async def test_an_inline_comment_stays_after_a_reload_and_reaches_the_agent(
    reviewer: Session, source_repo: Path
) -> None:
    page = await task_page(reviewer, source_repo, "@write notes.py def greet():\\n    return 'hi'\\n")
    notes = section(page, "notes.py")
    await notes.locator('.dl[data-side="new"][data-line="2"] .ln').nth(1).click()
    await page.get_by_label("Comment on line 2").fill("say hello instead")
    await page.get_by_role("button", name="Comment", exact=True).click()
    await expect(notes.locator(".comment-thread .comment-body")).to_have_text("say hello instead")
    await page.reload()
    comment = section(page, "notes.py").locator(".comment-thread .comment")
    await expect(comment.locator(".comment-body")).to_have_text("say hello instead")
    await expect(comment).to_contain_text("alice")
    await expect(page.locator("[data-review-count]")).to_have_text("1 open comment")
    await page.get_by_role("button", name="Send comments to the agent").click()
    # The fake agent echoes the prompt it got: the path, the line, the code quoted and the comment.
    echoed = page.locator("#feed .ev-text", has_text="say hello instead")
    await expect(echoed).to_contain_text("notes.py, line 2", timeout=60_000)
    await expect(echoed).to_contain_text("return 'hi'")
    await expect(page.locator("[data-field=status] .badge")).to_have_text("succeeded", timeout=60_000)
    await expect(section(page, "notes.py").locator(".comment-sent")).to_have_count(1)
    await expect(page.locator("[data-review-bar]")).to_be_hidden()


async def test_a_turn_picked_shows_only_what_that_turn_changed(reviewer: Session, source_repo: Path) -> None:
    page = await task_page(reviewer, source_repo, "@write one.txt first")
    await page.get_by_label("Continue the same session on the same branch").fill("@write two.txt second")
    await page.get_by_role("button", name="Send follow-up").click()
    await expect(page.locator("#feed .ev-commit")).to_have_count(2, timeout=60_000)
    await expect(page.locator("[data-field=status] .badge")).to_have_text("succeeded", timeout=60_000)
    files = page.locator("[data-diff-root] .diff-file")
    await expect(files).to_have_count(2)
    turns = page.locator("[data-diff-turn]")
    await turns.select_option(label="Turn 2")
    await expect(files).to_have_count(1)
    await expect(files).to_have_attribute("data-path", "two.txt")
    await turns.select_option(label="Turn 1")
    await expect(files).to_have_attribute("data-path", "one.txt")
    await turns.select_option(label="All changes")
    await expect(files).to_have_count(2)


async def test_side_by_side_highlights_code_and_keeps_hostile_text_as_text(
    reviewer: Session, source_repo: Path
) -> None:
    dialogs: list[str] = []

    async def dismiss(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        await dialog.dismiss()

    reviewer.page.on("dialog", dismiss)
    page = await task_page(reviewer, source_repo, (
        "@write app.py def main():\\n    return 42  # done\\n\n"
        "@write evil.html <img src=x onerror=alert(1)></script><script>alert(2)</script>\n"))
    app = section(page, "app.py")
    await expect(app.locator(".tok-kw", has_text="def")).to_have_count(1)
    await expect(app.locator(".tok-num")).to_have_text("42")
    await expect(app.locator(".tok-com")).to_have_text("# done")
    evil = section(page, "evil.html")
    await expect(evil.locator(".dl-add .dl-text")).to_have_text(
        "<img src=x onerror=alert(1)></script><script>alert(2)</script>")
    assert await page.locator("[data-diff-root] img, [data-diff-root] script").count() == 0
    await page.get_by_role("button", name="Side by side").click()
    await expect(app.locator(".sbs-old .dl-text")).to_have_text(["print('hello')"])
    await expect(app.locator(".sbs-new .dl-text")).to_have_text(["def main():", "    return 42  # done"])
    await page.reload()  # the choice is remembered
    await expect(page.get_by_role("button", name="Side by side")).to_have_attribute("aria-pressed", "true")
    await expect(section(page, "app.py").locator(".sbs-old")).not_to_have_count(0)
    assert await page.locator("[data-diff-root] img, [data-diff-root] script").count() == 0
    assert dialogs == []


async def test_keys_move_between_files_open_a_comment_and_show_help(reviewer: Session, source_repo: Path) -> None:
    page = await task_page(reviewer, source_repo, "@write a.txt one\n@write src/lib/b.txt two\n")
    tree = page.locator("[data-diff-root] .file-tree")
    folder = tree.get_by_role("button", name="src/lib/")
    await expect(folder).to_have_attribute("aria-expanded", "true")
    await folder.click()
    await expect(tree.locator(".tree-file", has_text="b.txt")).to_be_hidden()
    await folder.click()
    await tree.get_by_role("link", name="b.txt").click()
    await expect(section(page, "src/lib/b.txt")).to_have_class(re.compile("diff-current"))
    await page.locator("body").click(position={"x": 5, "y": 5})
    await page.keyboard.press("k")
    await expect(section(page, "a.txt").locator("summary")).to_be_focused()
    await page.keyboard.press("j")
    await expect(section(page, "src/lib/b.txt").locator("summary")).to_be_focused()
    await page.keyboard.press("c")
    form = section(page, "src/lib/b.txt").locator(".comment-form textarea")
    await expect(form).to_be_focused()
    await page.keyboard.type("jk")  # typed into the comment, not taken as shortcuts
    await expect(form).to_have_value("jk")
    await expect(section(page, "src/lib/b.txt").locator("summary")).to_have_count(1)
    await page.keyboard.press("Escape")
    await page.keyboard.press("?")
    await expect(page.get_by_role("dialog", name="Keyboard shortcuts")).to_be_visible()
