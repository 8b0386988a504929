"""The task page's activity feed and numbers in a real Chromium: notices in words, each error once with
advice and Retry, a cancel that says what became of the work, file changes as small diffs, and an
"Elapsed" that counts the turns, not the idle time between them."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import asyncpg
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
    screenshot,
    sign_in,
    wait_for_task,
)

# The `browser` and `live` fixtures.
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


async def headers_of(session: Session) -> dict[str, str]:
    return await api_headers(session.api, "alice", "alice-password")


async def start_task(session: Session, repo: Path, prompt: str) -> str:
    """Alice's task with `prompt`, started through the API; its page is opened. Answers its id."""
    headers = await headers_of(session)
    workspace = await ready_workspace(session.api, headers, repo)
    created = await session.api.post(f"/api/workspaces/{workspace['id']}/tasks", json={"prompt": prompt},
                                     headers=headers)
    assert created.status_code == 202, created.text
    task_id: str = created.json()["id"]
    await session.page.goto(f"/tasks/{task_id}")
    return task_id


async def visible_text(session: Session) -> str:
    return str(await session.page.locator("#task").inner_text())


async def test_a_cancel_mid_step_says_who_and_that_the_partial_work_was_committed(
    alice: Session, source_repo: Path
) -> None:
    page = alice.page
    await start_task(alice, source_repo, "@write draft.txt half done\n@bash sleep 60")
    feed = page.locator("#feed")
    await expect(feed.locator(".ev-tool", has_text="Bash").locator(".tool-state")).to_have_text("running")
    await page.get_by_role("button", name="Cancel").click()
    await page.get_by_role("dialog").get_by_role("button", name="Cancel task").click()
    await expect(page.locator("[data-field=status] .badge")).to_have_text("cancelled", timeout=30_000)
    await expect(feed.locator(".ev-status").last).to_contain_text(
        "Cancelled by alice; the work so far is committed as partial.")
    await expect(feed.locator(".ev-commit")).to_contain_text("(partial)")
    await expect(feed.locator(".ev-tool", has_text="Bash").locator(".tool-state")).to_have_text("stopped")
    await expect(feed.locator(".tool-state", has_text="running")).to_have_count(0)
    await expect(feed.locator(".ev-turn.ev-error")).to_have_count(0)
    await expect(feed.locator(".ev-retry")).to_have_count(0)


async def test_a_key_error_is_shown_once_with_advice_and_retry_runs_the_prompt_again(
    alice: Session, source_repo: Path
) -> None:
    page = alice.page
    prompt = "@api_error 401"
    task_id = await start_task(alice, source_repo, prompt)
    await expect(page.locator("[data-field=status] .badge")).to_have_text("failed", timeout=60_000)
    feed = page.locator("#feed")
    # The notice, the turn's error and the task's error say the same thing: it is shown once.
    await expect(feed.locator(".ev-error-text", has_text="401")).to_have_count(1)
    assert (await visible_text(alice)).count("API Error: 401") == 1
    await expect(page.locator("[data-field=error]")).to_be_hidden()
    link = feed.get_by_role("link", name="Settings \u2192 Model keys")
    await expect(link).to_have_attribute("href", "/settings#keys-head")
    assert "authentication_failed" not in await visible_text(alice)
    await screenshot(page, "task-failed-turn", element=page.locator("#feed"))

    retry = feed.get_by_role("button", name="Retry")
    await expect(retry).to_have_count(1)
    await retry.click()
    await expect(feed.locator(".ev-prompt .prompt-text").last).to_have_text(prompt)
    await expect(page.locator("[data-field=turns]")).to_have_text("2", timeout=60_000)
    task = await wait_for_task(alice.api, await headers_of(alice), task_id, TERMINAL)
    assert task["turns"] == 2 and task["status"] == "failed"
    # The second failure is its own turn's: shown (once) again, with a Retry of its own.
    await expect(feed.locator(".ev-error-text", has_text="401")).to_have_count(2)
    await expect(feed.get_by_role("button", name="Retry")).to_have_count(2)


async def test_a_write_shows_as_a_small_diff_whose_content_stays_text(alice: Session, source_repo: Path) -> None:
    page = alice.page
    body = "\\n".join(["<img src=x onerror=alert(1)>"] + [f"line {n}" for n in range(2, 31)])
    await start_task(alice, source_repo, f"@write page.html {body}\n@bash echo checked")
    await expect(page.locator("[data-field=status] .badge")).to_have_text("succeeded", timeout=60_000)
    write = page.locator("#feed .ev-tool", has_text="Write")
    await expect(write.locator(".tool-arg")).to_have_text("page.html")
    added = write.locator(".tool-diff-add .tool-diff-text")
    await expect(added).to_have_count(20)
    await expect(added.first).to_have_text("<img src=x onerror=alert(1)>")
    await expect(write.locator(".tool-diff-more")).to_have_text("\u2026 10 more lines")
    await expect(write).not_to_contain_text('"content"')
    assert await page.locator("#feed img, #feed [onerror]").count() == 0
    await screenshot(page, "task-write-diff", element=write)
    bash = page.locator("#feed .ev-tool", has_text="Bash")
    await bash.locator("summary").click()
    await expect(bash.locator(".tool-command .tool-pre")).to_have_text("echo checked")


async def test_edits_of_every_agent_show_as_diffs(alice: Session, source_repo: Path, database_url: str) -> None:
    headers = await headers_of(alice)
    workspace = await ready_workspace(alice.api, headers, source_repo)
    created = await alice.api.post(f"/api/workspaces/{workspace['id']}/tasks", json={"prompt": "@say hi"},
                                   headers=headers)
    task = await wait_for_task(alice.api, headers, created.json()["id"], TERMINAL)
    calls = [
        {"call_id": "e1", "name": "Edit", "input": {"file_path": "/workspace/app.py",
                                                     "old_string": "print('hello')", "new_string": "print('bye')"}},
        {"call_id": "e2", "name": "MultiEdit", "input": {"file_path": "/workspace/b.py", "edits": [
            {"old_string": "a = 1", "new_string": "a = 2"}, {"old_string": "b = 1", "new_string": "b = 2"}]}},
        {"call_id": "e3", "name": "Write", "input": {"file_path": "new.rs", "kind": "add"}},  # Codex's shape
        {"call_id": "e4", "name": "Delete", "input": {"file_path": "old.rs", "kind": "delete"}},
    ]
    await insert_events(database_url, task, [("tool.call", call) for call in calls])
    page = alice.page
    await page.goto(f"/tasks/{task['id']}")
    feed = page.locator("#feed")
    edit = feed.locator(".ev-tool[data-call-id=e1]")
    await expect(edit.locator(".tool-arg")).to_have_text("app.py")
    await expect(edit.locator(".tool-diff-del .tool-diff-text")).to_have_text(["print('hello')"])
    await expect(edit.locator(".tool-diff-add .tool-diff-text")).to_have_text(["print('bye')"])
    multi = feed.locator(".ev-tool[data-call-id=e2]")
    await expect(multi.locator(".tool-diff-del .tool-diff-text")).to_have_text(["a = 1", "b = 1"])
    await expect(multi.locator(".tool-diff-add .tool-diff-text")).to_have_text(["a = 2", "b = 2"])
    await expect(feed.locator(".ev-tool[data-call-id=e3] .tool-change")).to_have_text("File created.")
    await expect(feed.locator(".ev-tool[data-call-id=e4] .tool-change")).to_have_text("File deleted.")


async def insert_events(database_url: str, task: dict, events: list[tuple[str, dict]]) -> None:
    """Events appended to a finished task as if its agent had sent them."""
    conn = await asyncpg.connect(database_url)
    try:
        first = task["last_seq"] + 1
        for offset, (kind, data) in enumerate(events):
            await conn.execute("INSERT INTO task_events (task_id, seq, type, data) VALUES ($1, $2, $3, $4::jsonb)",
                               task["id"], first + offset, kind, json.dumps(data))
        await conn.execute("UPDATE tasks SET last_seq = $2 WHERE id = $1", task["id"], first + len(events) - 1)
    finally:
        await conn.close()


async def test_notices_read_as_sentences_and_technical_ones_fold_away(alice: Session, source_repo: Path) -> None:
    page = alice.page
    await start_task(alice, source_repo, "@say nothing to change\n@unknown\n@noise not json at all")
    await expect(page.locator("[data-field=status] .badge")).to_have_text("succeeded", timeout=60_000)
    feed = page.locator("#feed")
    await expect(feed.locator(".ev-notice", has_text="No files changed in this turn, so nothing was committed.")).to_be_visible()
    text = await visible_text(alice)
    for code in ("no_changes", "unknown_event", "agent_output", "mystery_event"):
        assert code not in text, code
    details = feed.locator(".ev-details-group")
    await expect(details.locator("summary")).to_have_text("2 details")
    await expect(details.locator(".ev-detail").first).to_be_hidden()
    await details.locator("summary").click()
    await expect(details.locator(".ev-detail", has_text="Not json at all")).to_be_visible()


async def two_turns_with_idle_time_between(session: Session, repo: Path, headers: dict[str, str]) -> str:
    """A task of two short turns, four idle seconds apart; its page open."""
    task_id = await start_task(session, repo, "@say first")
    await wait_for_task(session.api, headers, task_id, TERMINAL)
    await asyncio.sleep(4)  # nobody works meanwhile
    sent = await session.api.post(f"/api/tasks/{task_id}/messages", json={"prompt": "@say second"}, headers=headers)
    assert sent.status_code == 202, sent.text
    await wait_for_task(session.api, headers, task_id, {"succeeded"})
    await session.page.reload()
    return task_id


async def shown_times(session: Session) -> tuple[int, int]:
    """Elapsed, and the wall time since submit its tooltip gives, in seconds."""
    elapsed = seconds_of(await session.page.locator("[data-field=elapsed]").inner_text())
    title = await session.page.locator("[data-field=elapsed-stat]").get_attribute("title") or ""
    return elapsed, seconds_of(title.split(";")[1])


def seconds_of(text: str) -> int:
    """`12 s` or `3 min 4 s` as seconds."""
    match = re.search(r"(?:(\d+) min )?(\d+) s", text)
    assert match, text
    return int(match.group(1) or 0) * 60 + int(match.group(2))


async def test_elapsed_counts_the_turns_not_the_idle_time_between_them(alice: Session, source_repo: Path) -> None:
    page = alice.page
    await two_turns_with_idle_time_between(alice, source_repo, await headers_of(alice))
    await expect(page.locator("[data-field=turns]")).to_have_text("2")
    await expect(page.locator("[data-field=model-turns]")).to_have_text("\u00b7 2 model turns")
    elapsed, wall = await shown_times(alice)
    assert elapsed + 3 <= wall, (elapsed, wall)
    await asyncio.sleep(1.2)  # the page's clock ticks, and a finished task's time stands still
    assert await shown_times(alice) == (elapsed, wall)


async def test_the_page_has_the_same_numbers_without_javascript(
    browser: Browser, live: LiveServer, source_repo: Path
) -> None:
    session = await new_session(browser, live, java_script_enabled=False)
    try:
        headers = await make_member(session.api, "alice")
        await sign_in(session, "alice", "alice-password")
        await two_turns_with_idle_time_between(session, source_repo, headers)
        elapsed, wall = await shown_times(session)
        assert elapsed + 3 <= wall, (elapsed, wall)
        await expect(session.page.locator("[data-field=turns]")).to_have_text("2")
        await expect(session.page.locator("[data-field=model-turns]")).to_have_text("\u00b7 2 model turns")
    finally:
        await session.api.aclose()
        await session.close()
