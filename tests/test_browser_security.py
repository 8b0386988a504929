"""The browser UI's safety in a real Chromium: agent output never runs, forms need their CSRF token,
other people's tasks stay hidden, and the session cookie also opens the task WebSocket."""

from __future__ import annotations

import re
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


async def finished_task(session: Session, repo: Path, prompt: str) -> dict:
    headers = await api_headers(session.api, "alice", "alice-password")
    workspace = await ready_workspace(session.api, headers, repo)
    created = await session.api.post(f"/api/workspaces/{workspace['id']}/tasks", json={"prompt": prompt},
                                     headers=headers)
    assert created.status_code == 202, created.text
    return await wait_for_task(session.api, headers, created.json()["id"], TERMINAL)


async def test_html_an_agent_prints_is_shown_as_text_and_never_runs(alice: Session, source_repo: Path) -> None:
    prompt = ("@say <img src=x onerror=window.__xss=1>\n@say <script>window.__xss=2</script>\n"
              "@say [click me](javascript:window.__xss=3) and [docs](https://example.com/docs)\n"
              "@bash echo '<img src=y onerror=window.__xss=4>'")
    task = await finished_task(alice, source_repo, prompt)
    page = alice.page
    await page.goto(f"/tasks/{task['id']}")
    feed = page.locator("#feed")
    await expect(feed.locator(".ev-text", has_text="<img src=x onerror=window.__xss=1>")).to_be_visible()
    await expect(feed.locator(".ev-text", has_text="<script>window.__xss=2</script>")).to_be_visible()
    await expect(feed.locator(".ev-text", has_text="[click me](javascript:window.__xss=3)")).to_be_visible()
    await expect(feed.locator(".ev-text").get_by_role("link", name="docs")).to_have_attribute("href", "https://example.com/docs")
    await expect(feed.locator(".ev-text").get_by_role("link", name="docs")).to_have_attribute("rel", "noopener noreferrer nofollow")
    bash = feed.locator(".ev-tool", has_text="Bash")
    await bash.locator("summary").click()
    await expect(bash).to_contain_text("<img src=y onerror=window.__xss=4>")
    # The prompt bubble shows the same text, rendered by the same escaping renderer.
    await expect(feed.locator(".ev-prompt")).to_contain_text("<script>window.__xss=2</script>")
    assert await feed.locator("img, script, iframe, [onerror]").count() == 0
    assert await page.evaluate("typeof window.__xss") == "undefined"
    await screenshot(page, "task-untrusted-output")


async def test_a_form_post_without_the_csrf_token_is_refused(alice: Session) -> None:
    page = alice.page
    await page.goto("/settings")
    # A form as another site would post it: same fields, no _csrf_token.
    async with page.expect_response(re.compile(r"/settings/tokens$")) as refused:
        await page.evaluate("""() => {
            const form = document.createElement("form");
            form.method = "post";
            form.action = "/settings/tokens";
            const name = document.createElement("input");
            name.name = "name";
            name.value = "forged";
            form.appendChild(name);
            document.body.appendChild(form);
            form.submit();
        }""")
    assert (await refused.value).status == 403
    await expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    # A fetch with the session cookie but without the X-CSRFToken header is refused as well.
    status = await page.evaluate("""() => fetch("/api/tokens", {method: "POST", headers: {"Content-Type":
        "application/json"}, body: JSON.stringify({name: "forged"})}).then(r => r.status)""")
    assert status == 403
    headers = await api_headers(alice.api, "alice", "alice-password")
    assert (await alice.api.get("/api/tokens", headers=headers)).json() == []
    # The page's own form carries the token and works.
    await page.goto("/settings")
    await page.get_by_label("Name").fill("laptop")
    await page.get_by_role("button", name="Create token").click()
    await expect(page.get_by_test_id("new-token")).to_have_value(re.compile(r"^aic_"))


async def test_another_users_task_and_workspace_answer_404(browser, live: LiveServer, source_repo: Path) -> None:
    owner = await new_session(browser, live)
    other = await new_session(browser, live)
    try:
        await make_member(owner.api, "alice")
        await make_member(other.api, "bob")
        task = await finished_task(owner, source_repo, "@say private")
        await sign_in(other, "bob", "bob-password")
        for path in (f"/tasks/{task['id']}", f"/workspaces/{task['workspace_id']}"):
            response = await other.page.goto(path)
            assert response is not None and response.status == 404, path
            await expect(other.page.get_by_role("heading", name="Not found")).to_be_visible()
            await expect(other.page.get_by_text("private")).to_have_count(0)
        await screenshot(other.page, "not-found")
    finally:
        for session in (owner, other):
            await session.api.aclose()
            await session.close()


async def test_the_task_websocket_accepts_the_session_cookie(alice: Session, source_repo: Path) -> None:
    task = await finished_task(alice, source_repo, "@say over the socket")
    page = alice.page
    await page.goto("/")
    events = await page.evaluate("""(taskId) => new Promise((resolve, reject) => {
        const seen = [];
        const socket = new WebSocket(`ws://${location.host}/ws/tasks/${taskId}`);
        socket.onmessage = (message) => seen.push(JSON.parse(message.data));
        socket.onclose = () => resolve(seen);
        socket.onerror = () => reject(new Error("websocket failed"));
    })""", task["id"])
    assert [event["seq"] for event in events] == list(range(1, task["last_seq"] + 1))
    assert any(event["data"].get("text") == "over the socket" for event in events)


async def test_pages_forbid_inline_scripts_with_a_content_security_policy(alice: Session) -> None:
    response = await alice.page.goto("/")
    assert response is not None
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert response.headers["x-frame-options"] == "DENY"
    # An inline script slipped into the page is blocked by the browser itself.
    ran = await alice.page.evaluate("""() => new Promise((resolve) => {
        document.addEventListener("securitypolicyviolation", () => resolve("blocked"), {once: true});
        const script = document.createElement("script");
        script.textContent = "window.__inline = 1";
        document.body.appendChild(script);
        setTimeout(() => resolve(window.__inline === 1 ? "ran" : "blocked"), 500);
    })""")
    assert ran == "blocked"
    alice.errors.clear()  # that violation was the point of this test


async def test_download_patch_is_offered_only_when_there_is_a_patch(alice: Session, source_repo: Path) -> None:
    nothing = await finished_task(alice, source_repo, "@say nothing to change")
    page = alice.page
    await page.goto(f"/tasks/{nothing['id']}")
    await expect(page.get_by_text("nothing to change").first).to_be_visible()
    await expect(page.get_by_test_id("download-patch")).to_be_hidden()
    headers = await api_headers(alice.api, "alice", "alice-password")
    changed = await alice.api.post(f"/api/workspaces/{nothing['workspace_id']}/tasks",
                                   json={"prompt": "@write a.txt a change"}, headers=headers)
    task = await wait_for_task(alice.api, headers, changed.json()["id"], TERMINAL)
    await page.goto(f"/tasks/{task['id']}")
    await expect(page.get_by_test_id("download-patch")).to_be_visible()


async def test_the_tab_title_carries_the_tasks_state(alice: Session, source_repo: Path) -> None:
    task = await finished_task(alice, source_repo, "@say done")
    page = alice.page
    await page.goto(f"/tasks/{task['id']}")
    await expect(page).to_have_title(re.compile(r"^succeeded · Task "))
