"""The browser UI in a real headless Chromium: sign in, workspaces, a live task, its diff, follow-up, cancel."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from tests.browser_support import (
    TERMINAL,
    LiveServer,
    Session,
    TcpProxy,
    api_headers,
    make_member,
    new_session,
    ready_workspace,
    screenshot,
    sign_in,
    task_id_from_url,
    wait_for_task,
)
from tests.conftest import ADMIN

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


async def open_workspace(session: Session, repo: Path) -> dict:
    """Alice's workspace for `repo`, made through the API, with its page open."""
    workspace = await ready_workspace(session.api, await alice_headers(session), repo)
    await session.page.goto(f"/workspaces/{workspace['id']}")
    return workspace


async def alice_headers(session: Session) -> dict[str, str]:
    return await api_headers(session.api, "alice", "alice-password")


async def shown_seqs(session: Session) -> list[int]:
    return [int(seq) for seq in await session.page.locator("#feed [data-seq]").evaluate_all(
        "nodes => nodes.map(node => node.dataset.seq)")]


async def run_task(session: Session, prompt: str) -> str:
    """Submit the new-task form on the open workspace page; answers the task id once its page is shown."""
    page = session.page
    await page.get_by_label("Prompt").fill(prompt)
    await page.get_by_role("button", name="Run task").click()
    await page.wait_for_url(re.compile(r"/tasks/[0-9a-f-]{36}$"))
    return task_id_from_url(page.url)


async def test_signing_in_sets_an_httponly_session_cookie_and_signing_out_revokes_it(browser, live) -> None:
    session = await new_session(browser, live)
    try:
        page = session.page
        await page.goto("/login")
        await page.get_by_label("Username").fill(ADMIN[0])
        await page.get_by_label("Password").fill("wrong password")
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("alert")).to_contain_text("Wrong username or password")
        await screenshot(page, "login")
        await sign_in(session)
        await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
        cookie = next(c for c in await session.context.cookies() if c["name"] == "aicode_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and not cookie["secure"]
        # The cookie authenticates the JSON API too (GET needs no CSRF token).
        assert (await session.api.get("/api/me", headers={"Cookie": f"aicode_session={cookie['value']}"})).status_code == 200
        await page.get_by_role("button", name="Sign out").click()
        await page.wait_for_url(re.compile(r"/login$"))
        assert (await session.api.get("/api/me", headers={"Cookie": f"aicode_session={cookie['value']}"})).status_code == 401
    finally:
        await session.api.aclose()
        await session.close()
    assert session.errors == []


async def test_a_logged_out_visitor_sees_only_the_sign_in_page(browser, live) -> None:
    session = await new_session(browser, live)
    try:
        for path in ("/", "/workspaces", "/settings", "/admin", "/tasks/6f1c0d51-0c4e-4a7e-9a43-0d6bbf0a9d11"):
            response = await session.page.goto(path)
            assert response is not None and response.ok
            assert re.search(r"/login\?next=", session.page.url), session.page.url
            await expect(session.page.get_by_role("heading", name="Sign in to aicode")).to_be_visible()
            await expect(session.page.get_by_role("navigation", name="Main")).to_have_count(0)
        api = await session.api.get("/api/workspaces")
        assert api.status_code == 401 and api.headers["content-type"].startswith("application/json")
        # After signing in, the visitor lands where they were going.
        await session.page.goto("/login?next=/settings")
        await session.page.get_by_label("Username").fill(ADMIN[0])
        await session.page.get_by_label("Password").fill(ADMIN[1])
        await session.page.get_by_role("button", name="Sign in").click()
        await session.page.wait_for_url(re.compile(r"/settings$"))
    finally:
        await session.api.aclose()
        await session.close()


async def test_creating_a_workspace_lists_it_ready_and_it_syncs(alice: Session, source_repo: Path) -> None:
    page = alice.page
    await page.goto("/workspaces")
    await expect(page.get_by_text("No workspaces yet")).to_be_visible()
    await page.get_by_label("Name").fill("project")
    await page.get_by_label("Repository").fill("/not/an/allowed/root")
    await page.get_by_role("button", name="Create workspace").click()
    await expect(page.get_by_role("alert")).to_contain_text("outside the folders this server allows")
    await page.get_by_label("Repository").fill(str(source_repo))
    await page.get_by_label("Memory (MB)").fill("1024")
    await page.get_by_role("button", name="Create workspace").click()
    item = page.locator(".ws-item", has_text="project")
    await expect(item.locator("[data-status-badge]")).to_have_text("ready")
    await expect(item).to_contain_text("trunk")
    await item.get_by_role("button", name="Sync").click()
    await expect(page.locator(".ws-item", has_text="project").locator("[data-status-badge]")).to_have_text("ready")
    await screenshot(page, "workspaces")


async def test_a_task_streams_text_and_tool_calls_live_then_shows_its_diff(
    alice: Session, source_repo: Path
) -> None:
    page = alice.page
    await open_workspace(alice, source_repo)
    await screenshot(page, "workspace")
    prompt = ("@say Starting on **the notes** with `notes.md`\n@think Where do notes go?\n@sleep 1\n"
              "@write notes.md # Notes\\nfirst line\\nsecond line\n@bash echo checked\n"
              "@write app.py print('hello, world')\n@sleep 2\n@say All done.")
    task_id = await run_task(alice, prompt)
    feed = page.locator("#feed")
    await expect(feed.locator(".ev-text").first).to_contain_text("Starting on the notes with notes.md")
    await expect(feed.locator(".ev-text strong")).to_have_text("the notes")
    await expect(page.locator("[data-live]")).to_have_text("Live")
    tool = feed.locator(".ev-tool", has_text="Write").first
    await expect(tool.locator(".tool-arg")).to_have_text("notes.md")
    await expect(feed.locator(".ev-tool", has_text="Bash").locator(".tool-arg")).to_have_text("echo checked")
    task = (await alice.api.get(f"/api/tasks/{task_id}", headers=await alice_headers(alice))).json()
    assert task["status"] == "running", "the tool calls must show while the task is still running"
    await expect(page.locator("[data-field=status] .badge")).to_have_text("running")
    # Tokens move while the turn runs, from its usage events (the task row has them only at the end).
    await expect(page.locator("[data-field=tokens]")).not_to_have_text("0 / 0")
    await screenshot(page, "task-live", docs=True, full_page=False)
    # A write shows what it wrote, as added lines, without a click.
    await expect(tool.locator(".tool-diff-add .tool-diff-text")).to_have_text(["# Notes", "first line", "second line"])
    await expect(feed.locator(".ev-thinking")).not_to_have_attribute("open", "")
    await expect(page.locator("[data-field=status] .badge")).to_have_text("succeeded", timeout=60_000)
    await expect(page.locator("[data-live]")).to_have_text("Ended")
    await expect(page.locator("[data-field=cost]")).not_to_have_text("$0.00")
    diff = page.locator("[data-diff-root]")
    await expect(diff.locator(".file-list li")).to_have_count(2)
    await expect(diff.locator(".file-list li", has_text="notes.md")).to_contain_text("+3")
    await expect(diff.locator(".file-list li", has_text="app.py")).to_contain_text("+1\u22121")
    notes = diff.locator(".diff-file", has_text="notes.md")
    await expect(notes.locator(".dl-add .dl-text")).to_have_text(["# Notes", "first line", "second line"])
    await expect(diff.locator(".diff-file", has_text="app.py").locator(".dl-del .dl-text")).to_have_text(
        ["print('hello')"])
    await notes.locator("summary").click()
    await expect(notes.locator(".diff-lines")).to_be_hidden()
    await notes.locator("summary").click()
    await screenshot(page, "diff", docs=True, element=page.locator("#changes"))
    async with page.expect_download() as download_info:
        await page.get_by_role("link", name="Download patch").click()
    patch = Path(await (await download_info.value).path()).read_text()
    assert "+++ b/notes.md" in patch and "+first line" in patch
    task = (await alice.api.get(f"/api/tasks/{task_id}", headers=await alice_headers(alice))).json()
    assert sorted(await shown_seqs(alice)) == list(range(1, task["last_seq"] + 1))


async def test_the_agent_picker_starts_a_task_with_the_chosen_agent_and_model(
    alice: Session, source_repo: Path
) -> None:
    page = alice.page
    headers = await alice_headers(alice)
    workspace = await open_workspace(alice, source_repo)
    picker = page.get_by_label("Agent", exact=True)
    await expect(picker).to_have_value("claude")
    await expect(picker.locator("option[value=claude]")).to_have_text(re.compile(r"^Claude Code \d+\.\d+"))
    codex = picker.locator("option[value=codex]")
    await expect(codex).to_be_disabled()
    await expect(codex).to_contain_text("no OpenAI key")
    await expect(page.get_by_test_id("agent-notes")).to_contain_text("no OpenAI key — add yours under Settings")

    stored = await alice.api.put("/api/me/credentials/openai", json={"api_key": "sk-test-openai"}, headers=headers)
    assert stored.status_code == 204, stored.text
    await page.reload()
    await expect(codex).to_be_enabled()
    await expect(codex).to_have_text(re.compile(r"^OpenAI Codex \d+\.\d+"))
    model = page.get_by_label("Model (optional)")
    await expect(model).to_have_attribute("list", "models-claude")
    await picker.select_option("codex")
    # The suggestions and the placeholder follow the agent.
    await expect(model).to_have_attribute("list", "models-codex")
    await expect(model).to_have_attribute("placeholder", "gpt-6.2-sol")
    assert "gpt-6.1-terra" in await page.locator("#models-codex option").evaluate_all(
        "options => options.map(option => option.value)")
    await model.fill("gpt-6.1-terra")
    # Without its key again the turn fails at once, naming the key: the real Codex CLI needs no mock API here.
    assert (await alice.api.delete("/api/me/credentials/openai", headers=headers)).status_code == 204
    task_id = await run_task(alice, "@say from codex")
    await expect(page.get_by_test_id("task-agent")).to_have_text("OpenAI Codex")
    await expect(page.get_by_test_id("task-model")).to_have_text("gpt-6.1-terra")
    await expect(page.locator("[data-field=status] .badge")).to_have_text("failed", timeout=60_000)
    await expect(page.locator("[data-field=error]")).to_contain_text("has no OpenAI key")
    task = (await alice.api.get(f"/api/tasks/{task_id}", headers=headers)).json()
    assert (task["agent"], task["model"]) == ("codex", "gpt-6.1-terra")
    await page.goto(f"/workspaces/{workspace['id']}")
    await expect(page.locator(f"tr[data-task-id='{task_id}'] .agent-tag")).to_have_text("codex")


async def test_without_javascript_the_task_form_still_sends_agent_and_model(
    browser, live: LiveServer, source_repo: Path
) -> None:
    session = await new_session(browser, live, java_script_enabled=False)
    try:
        headers = await make_member(session.api, "alice")
        await sign_in(session, "alice", "alice-password")
        workspace = await open_workspace(session, source_repo)
        page = session.page
        await page.get_by_label("Agent", exact=True).select_option("claude")
        await page.get_by_label("Model (optional)").fill("haiku")
        task_id = await run_task(session, "@say no scripts here")
        await expect(page.get_by_test_id("task-agent")).to_have_text("Claude Code")
        await expect(page.get_by_test_id("task-model")).to_have_text("haiku")
        task = await wait_for_task(session.api, headers, task_id, TERMINAL)
        assert (task["agent"], task["model"], task["status"]) == ("claude", "haiku", "succeeded")
        # The server checks the agent a form names, as the JSON API does.
        refused = await session.api.post(f"/workspaces/{workspace['id']}/tasks", headers=headers,
                                         data={"prompt": "@say hi", "agent": "gpt"})
        assert refused.status_code == 400
        assert "agent: no agent &#39;gpt&#39; on this server; choose one of Claude Code (claude)" in refused.text
    finally:
        await session.api.aclose()
        await session.close()
    assert session.errors == []


async def test_a_follow_up_continues_the_same_task(alice: Session, source_repo: Path) -> None:
    page = alice.page
    await open_workspace(alice, source_repo)
    await run_task(alice, "@write one.txt 1")
    await expect(page.locator("[data-field=status] .badge")).to_have_text("succeeded", timeout=60_000)
    await page.get_by_label("Continue the same session on the same branch").fill(
        "@write two.txt 2\n@say second turn **as typed**")
    await page.get_by_role("button", name="Send follow-up").click()
    await expect(page.locator("#feed .ev-prompt", has_text="second turn")).to_be_visible()
    # The prompt is shown exactly as typed: its asterisks are not markdown.
    await expect(page.locator("#feed .ev-prompt .prompt-text")).to_contain_text("second turn **as typed**")
    await expect(page.locator("#feed .ev-text", has_text="second turn")).to_be_visible(timeout=60_000)
    await expect(page.locator("[data-field=status] .badge")).to_have_text("succeeded", timeout=60_000)
    await expect(page.locator("[data-field=turns]")).to_have_text("2")
    await expect(page.locator("#feed .ev-commit")).to_have_count(2)
    await expect(page.locator("[data-diff-root] .file-list li")).to_have_count(2)


async def test_cancel_asks_for_confirmation_then_stops_the_task(alice: Session, source_repo: Path) -> None:
    page = alice.page
    await open_workspace(alice, source_repo)
    task_id = await run_task(alice, "@say working on it\n@bash sleep 60")
    await expect(page.locator("#feed .ev-text", has_text="working on it")).to_be_visible()
    await expect(page.locator("#feed .ev-tool .tool-state")).to_have_text("running")
    await page.get_by_role("button", name="Cancel").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_contain_text("Cancel this task?")
    await dialog.get_by_role("button", name="Keep running").click()
    await expect(dialog).to_be_hidden()
    await asyncio.sleep(0.5)
    task = (await alice.api.get(f"/api/tasks/{task_id}", headers=await alice_headers(alice))).json()
    assert task["status"] == "running"
    await page.get_by_role("button", name="Cancel").click()
    await dialog.get_by_role("button", name="Cancel task").click()
    await expect(page.locator("[data-field=status] .badge")).to_have_text("cancelled", timeout=30_000)
    await expect(page.get_by_role("button", name="Cancel")).to_be_hidden()
    await expect(page.get_by_role("button", name="Send follow-up")).to_be_enabled()
    # A cancel reads as one, by whom, with no step left running and no red "turn failed, code 137"; the
    # turn had changed no file.
    await expect(page.locator("#feed .ev-status").last).to_contain_text(
        "Cancelled by alice; nothing had changed, so nothing was committed.")
    await expect(page.locator("#feed .ev-tool .tool-state")).to_have_text("stopped")
    await expect(page.locator("#feed .ev-turn.ev-error")).to_have_count(0)
    await expect(page.locator("#feed")).not_to_contain_text("code 137")


async def test_a_reconnect_mid_stream_shows_every_event_once(browser, live: LiveServer, source_repo: Path) -> None:
    proxy = TcpProxy(live.port)
    await proxy.start()
    session = await new_session(browser, live, via=proxy)
    try:
        await make_member(session.api, "alice")
        await sign_in(session, "alice", "alice-password")
        await check_reconnect(session, proxy, source_repo)
    finally:
        await session.api.aclose()
        await session.close()
        await proxy.stop()
    assert session.errors == []


async def check_reconnect(session: Session, proxy: TcpProxy, source_repo: Path) -> None:
    page = session.page
    await open_workspace(session, source_repo)
    steps = "\n".join(f"@say step {n}\n@sleep 0.5" for n in range(1, 9))
    task_id = await run_task(session, steps)
    await expect(page.locator("#feed .ev-text", has_text="step 1")).to_be_visible()
    await expect(page.locator("[data-live]")).to_have_text("Live")
    await session.context.set_offline(True)  # the reconnect attempts fail too, for a while
    assert proxy.cut() > 0
    await expect(page.locator("[data-live]")).to_have_text("Reconnecting…")
    before = await shown_seqs(session)
    await asyncio.sleep(1.5)  # the agent goes on meanwhile; those events must arrive after the reconnect
    await session.context.set_offline(False)
    await expect(page.locator("[data-field=status] .badge")).to_have_text("succeeded", timeout=60_000)
    await expect(page.locator("#feed .ev-text", has_text="step 8")).to_be_visible()
    task = await wait_for_task(session.api, await alice_headers(session), task_id, TERMINAL)
    seqs = await shown_seqs(session)
    assert len(seqs) == len(set(seqs)), "an event was shown twice"
    assert sorted(seqs) == list(range(1, task["last_seq"] + 1)), "an event is missing"
    assert max(before) < task["last_seq"], "the drop must have happened mid-stream"


@pytest.mark.serial  # the page is timed to 5 s: Chromium shares the CPU with other tests
async def test_a_task_with_ten_thousand_events_opens_at_its_end_and_loads_earlier_ones(
    alice: Session, source_repo: Path, database_url: str
) -> None:
    import asyncpg

    headers = await alice_headers(alice)
    workspace = await ready_workspace(alice.api, headers, source_repo)
    created = await alice.api.post(f"/api/workspaces/{workspace['id']}/tasks", json={"prompt": "@say hi"},
                                   headers=headers)
    task = await wait_for_task(alice.api, headers, created.json()["id"], TERMINAL)
    conn = await asyncpg.connect(database_url)
    try:
        first = task["last_seq"] + 1
        total = task["last_seq"] + 10_000
        await conn.execute(
            """INSERT INTO task_events (task_id, seq, type, data)
               SELECT $1, s, 'notice', jsonb_build_object('level', 'info', 'code', 'log', 'message', 'line ' || s)
               FROM generate_series($2::bigint, $3::bigint) AS s""", task["id"], first, total)
        await conn.execute("UPDATE tasks SET last_seq = $2 WHERE id = $1", task["id"], total)
    finally:
        await conn.close()
    page = alice.page
    started = asyncio.get_running_loop().time()
    await page.goto(f"/tasks/{task['id']}")
    await expect(page.locator(f"#feed [data-seq='{total}']")).to_be_visible()
    assert asyncio.get_running_loop().time() - started < 5
    assert sorted(await shown_seqs(alice)) == list(range(total - 199, total + 1))
    await page.get_by_role("button", name="Load earlier events").click()
    await expect(page.locator("#feed [data-seq]")).to_have_count(400)
    assert sorted(await shown_seqs(alice)) == list(range(total - 399, total + 1))
