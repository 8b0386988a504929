"""The other pages in a real Chromium: overview with its chart, task filters, settings, admin, phone width."""

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


async def run_tasks(session: Session, repo: Path, prompts: list[str]) -> tuple[dict, list[dict]]:
    headers = await api_headers(session.api, "alice", "alice-password")
    workspace = await ready_workspace(session.api, headers, repo)
    tasks = []
    for prompt in prompts:
        created = await session.api.post(f"/api/workspaces/{workspace['id']}/tasks", json={"prompt": prompt},
                                         headers=headers)
        tasks.append(await wait_for_task(session.api, headers, created.json()["id"], TERMINAL))
    return workspace, tasks


async def test_the_overview_shows_queue_recent_tasks_and_a_usage_chart(alice: Session, source_repo: Path) -> None:
    await run_tasks(alice, source_repo, ["@say first", "@write a.txt a", "@api_error 400"])
    page = alice.page
    await page.goto("/")
    await expect(page.get_by_test_id("queue-depth")).to_have_text("0")
    rows = page.locator(".tasks-table tbody tr")
    await expect(rows).to_have_count(3)
    await expect(rows.first.locator("[data-status-badge]")).to_have_text("failed")
    chart = page.get_by_role("img", name="Tasks and cost per workspace")
    await expect(chart).to_be_visible()
    await expect(chart.locator("text.chart-value").first).to_have_text("3 tasks")
    assert float(await chart.locator("rect.bar-tasks").first.get_attribute("width")) > 0
    await screenshot(page, "overview")


async def test_the_workspace_page_filters_tasks_by_status_author_and_text(alice: Session, source_repo: Path) -> None:
    workspace, _ = await run_tasks(alice, source_repo, ["@say apples", "@say pears", "@api_error 400"])
    page = alice.page
    await page.goto(f"/workspaces/{workspace['id']}")
    rows = page.locator(".tasks-table tbody tr")
    await expect(rows).to_have_count(3)
    await page.get_by_label("Status").select_option("failed")
    await page.get_by_role("button", name="Filter").click()
    await expect(rows).to_have_count(1)
    await page.get_by_role("link", name="Clear").click()
    await page.get_by_label("Text").fill("pears")
    await page.get_by_label("Who").select_option("alice")
    await page.get_by_role("button", name="Filter").click()
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("@say pears")
    await page.get_by_label("Text").fill("plums")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.get_by_text("No tasks match.")).to_be_visible()


async def test_settings_keep_the_credential_write_only_and_show_a_token_once(alice: Session) -> None:
    page = alice.page
    await page.goto("/settings")
    await page.get_by_label("Kind of Anthropic key").select_option("oauth_token")
    await page.get_by_label("New Anthropic key or token").fill("sk-ant-oat-secret-value-123")
    await page.get_by_role("button", name="Save Anthropic key").click()
    await expect(page.get_by_role("status")).to_contain_text("Anthropic key saved")
    await expect(page.get_by_test_id("key-anthropic-status")).to_contain_text("OAuth token, saved just now")
    assert "sk-ant-oat-secret-value-123" not in await page.content()
    await expect(page.get_by_label("New Anthropic key or token")).to_have_value("")
    await page.get_by_label("Name").fill("laptop")
    await page.get_by_role("button", name="Create token").click()
    token = await page.get_by_test_id("new-token").input_value()
    assert token.startswith("aic_")
    await screenshot(page, "settings")
    me = await alice.api.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.json()["username"] == "alice"
    await page.goto("/settings")
    assert token not in await page.content()
    page.once("dialog", lambda dialog: dialog.accept())
    await page.get_by_role("button", name="Revoke").click()
    await expect(page.get_by_role("status")).to_contain_text("API token revoked")
    assert (await alice.api.get("/api/me", headers={"Authorization": f"Bearer {token}"})).status_code == 401


async def test_settings_store_and_remove_an_openai_key(alice: Session) -> None:
    page = alice.page
    headers = await api_headers(alice.api, "alice", "alice-password")
    await page.goto("/settings")
    status = page.get_by_test_id("key-openai-status")
    await expect(status).to_contain_text("not set")
    await expect(page.get_by_role("button", name="Remove OpenAI key")).to_have_count(0)
    await page.get_by_label("OpenAI API key").fill("sk-proj with-a-space")
    await page.get_by_role("button", name="Save OpenAI key").click()
    row = page.locator(".model-key[data-provider=openai]")
    await expect(row.get_by_role("alert")).to_have_text("the key must not contain spaces or line breaks")
    await page.get_by_label("OpenAI API key").fill("sk-proj-secret-openai-456")
    await page.get_by_role("button", name="Save OpenAI key").click()
    await expect(page.get_by_role("status")).to_contain_text("OpenAI key saved")
    await expect(status).to_contain_text("set API key, saved just now")
    assert "sk-proj-secret-openai-456" not in await page.content()
    await screenshot(page, "settings-model-keys")
    listed = {c["provider"]: c for c in (await alice.api.get("/api/me/credentials", headers=headers)).json()}
    assert listed["openai"]["configured"] and listed["openai"]["kind"] == "api_key"
    assert not listed["gemini"]["configured"]
    page.once("dialog", lambda dialog: dialog.accept())
    await page.get_by_role("button", name="Remove OpenAI key").click()
    await expect(page.get_by_role("status")).to_contain_text("OpenAI key removed")
    await expect(status).to_contain_text("not set")
    assert not (await alice.api.get("/api/me/credentials/openai", headers=headers)).json()["configured"]


async def test_an_owner_sets_a_team_key_and_a_member_runs_that_providers_agent_with_it(
    browser, live: LiveServer, source_repo: Path
) -> None:
    owner = await new_session(browser, live)
    editor = await new_session(browser, live)
    try:
        alice = await make_member(owner.api, "alice")
        bob = await make_member(owner.api, "bob")
        workspace = await ready_workspace(owner.api, alice, source_repo)
        await owner.api.put(f"/api/workspaces/{workspace['id']}/members/bob", json={"role": "editor"}, headers=alice)
        await sign_in(owner, "alice", "alice-password")
        page = owner.page
        await page.goto(f"/workspaces/{workspace['id']}")
        await page.get_by_label("Team Google Gemini API key").fill("AIza-team-gemini-789")
        await page.get_by_role("button", name="Save team Google Gemini key").click()
        await expect(page.get_by_test_id("team-key-gemini-status")).to_contain_text("set API key, saved just now by alice")
        assert "AIza-team-gemini-789" not in await page.content()
        team = await owner.api.get(f"/api/workspaces/{workspace['id']}/credentials/gemini", headers=bob)
        assert team.json()["configured"] and team.json()["updated_by"] == "alice"

        await sign_in(editor, "bob", "bob-password")
        await editor.page.goto(f"/workspaces/{workspace['id']}")
        await expect(editor.page.get_by_test_id("team-key-gemini-status")).to_contain_text("set API key")
        await expect(editor.page.get_by_role("button", name="Save team Google Gemini key")).to_have_count(0)
        # Bob has no Gemini key of his own: the team's lets him pick the Gemini CLI.
        await expect(editor.page.locator("#task-agent option[value=gemini]")).to_be_enabled()
        await expect(editor.page.locator("#task-agent option[value=codex]")).to_be_disabled()

        page.once("dialog", lambda dialog: dialog.accept())
        await page.get_by_role("button", name="Remove team Google Gemini key").click()
        await expect(page.get_by_test_id("team-key-gemini-status")).to_contain_text("not set")
        await editor.page.reload()
        await expect(editor.page.locator("#task-agent option[value=gemini]")).to_be_disabled()
    finally:
        for session in (owner, editor):
            await session.api.aclose()
            await session.close()
    assert owner.errors == [] and editor.errors == []


async def test_admins_manage_users_and_members_are_refused(browser, live: LiveServer) -> None:
    admin = await new_session(browser, live)
    try:
        await make_member(admin.api, "carol")
        await sign_in(admin)
        page = admin.page
        await page.goto("/admin")
        await page.get_by_label("Username").fill("dave")
        await page.get_by_label("Password (8+ characters)").fill("dave-password")
        await page.get_by_role("button", name="Create user").click()
        await expect(page.get_by_role("status")).to_contain_text("User created")
        dave = page.locator("tr[data-username=dave]")
        await dave.get_by_label("New password for dave").fill("dave-new-password")
        await dave.get_by_role("button", name="Set").click()
        await expect(page.get_by_role("status")).to_contain_text("Password reset")
        await api_headers(admin.api, "dave", "dave-new-password")
        page.once("dialog", lambda dialog: dialog.accept())
        await page.locator("tr[data-username=dave]").get_by_role("button", name="Disable").click()
        await expect(page.locator("tr[data-username=dave]")).to_contain_text("disabled")
        await screenshot(page, "admin")
        refused = await admin.api.post("/api/auth/login", json={"username": "dave", "password": "dave-new-password"})
        assert refused.status_code == 401
        await page.get_by_role("button", name="Sign out").click()
        await sign_in(admin, "carol", "carol-password")
        await expect(page.get_by_role("link", name="Admin")).to_have_count(0)
        response = await page.goto("/admin")
        assert response is not None and response.status == 403
        await expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    finally:
        await admin.api.aclose()
        await admin.close()
    assert admin.errors == []


async def test_pages_fit_a_phone_and_follow_the_dark_color_scheme(browser, live: LiveServer, source_repo: Path
                                                                  ) -> None:
    phone = await new_session(browser, live, viewport={"width": 390, "height": 844}, color_scheme="dark",
                              is_mobile=True, has_touch=True)
    try:
        await make_member(phone.api, "alice")
        await sign_in(phone, "alice", "alice-password")
        workspace, tasks = await run_tasks(phone, source_repo, ["@say on a phone\n@write phone.txt small screens"])
        for name, path in (("overview", "/"), ("workspaces", "/workspaces"), ("workspace", f"/workspaces/{workspace['id']}"),
                           ("settings", "/settings"), ("task", f"/tasks/{tasks[0]['id']}")):
            await phone.page.goto(path)
            if name == "task":
                await expect(phone.page.locator("[data-diff-root] .diff-file")).to_have_count(1)
            overflow = await phone.page.evaluate(
                "() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at phone width"
            await screenshot(phone.page, f"phone-dark-{name}")
        background = await phone.page.evaluate("() => getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(14, 17, 22)"
        # Keyboard: the follow-up box and its button are reachable and labelled.
        await expect(phone.page.get_by_label("Continue the same session on the same branch")).to_be_editable()
        await expect(phone.page.get_by_role("button", name="Send follow-up")).to_be_enabled()
        await expect(phone.page).to_have_url(re.compile(r"/tasks/"))
    finally:
        await phone.api.aclose()
        await phone.close()
    assert phone.errors == []


async def test_an_admin_sets_a_monthly_budget_and_the_member_sees_it_with_the_spend(browser, live: LiveServer) -> None:
    admin = await new_session(browser, live)
    try:
        await make_member(admin.api, "erin")
        await sign_in(admin)
        page = admin.page
        await page.goto("/admin")
        erin = page.locator("tr[data-username=erin]")
        await erin.get_by_label("Monthly budget of erin in USD (empty: none)").fill("12.5")
        await erin.get_by_role("button", name="Save").click()
        await expect(page.get_by_role("status")).to_contain_text("Monthly budget saved")
        headers = await api_headers(admin.api, "erin", "erin-password")
        assert (await admin.api.get("/api/me/usage", headers=headers)).json() == {
            "month_spent_usd": 0.0, "monthly_budget_usd": 12.5}
        await page.get_by_role("button", name="Sign out").click()
        await sign_in(admin, "erin", "erin-password")
        await page.goto("/settings")
        await expect(page.get_by_test_id("model-spend")).to_have_text(
            "Model spend this month: $0.00 of your $12.50 monthly budget.")
    finally:
        await admin.api.aclose()
        await admin.close()


async def test_an_owner_shares_a_workspace_and_a_viewer_sees_it_read_only(
    browser, live: LiveServer, source_repo: Path
) -> None:
    owner = await new_session(browser, live)
    viewer = await new_session(browser, live)
    try:
        alice = await make_member(owner.api, "alice")
        await make_member(owner.api, "victor")
        workspace = await ready_workspace(owner.api, alice, source_repo)
        await sign_in(owner, "alice", "alice-password")
        page = owner.page
        await page.goto(f"/workspaces/{workspace['id']}")
        await expect(page).to_have_title(f"{workspace['name']} · aicode")
        await page.get_by_label("Add a member").fill("victor")
        await page.get_by_label("Role", exact=True).select_option("viewer")
        await page.get_by_role("button", name="Add member").click()
        await expect(page.locator("tr[data-member=victor]")).to_be_visible()
        await expect(page.get_by_label("Role of victor")).to_have_value("viewer")
        await sign_in(viewer, "victor", "victor-password")
        await viewer.page.goto(f"/workspaces/{workspace['id']}")
        await expect(viewer.page.get_by_test_id("read-only")).to_be_visible()
        await expect(viewer.page.get_by_role("heading", name="New task")).to_have_count(0)
        await expect(viewer.page.get_by_role("button", name="Add member")).to_have_count(0)
        await expect(viewer.page.locator("tr[data-member=alice]")).to_contain_text("owner")
    finally:
        for session in (owner, viewer):
            await session.api.aclose()
            await session.close()


async def test_settings_hold_the_git_identity_commits_are_authored_with(alice: Session) -> None:
    page = alice.page
    await page.goto("/settings")
    await page.get_by_label("Commit author").fill("Alice Liddell")
    await page.get_by_label("Commit email").fill("alice@example.com")
    await page.get_by_role("button", name="Save git identity").click()
    await expect(page.get_by_role("status")).to_contain_text("Git identity saved")
    await expect(page.get_by_label("Commit author")).to_have_value("Alice Liddell")
    headers = await api_headers(alice.api, "alice", "alice-password")
    me = (await alice.api.get("/api/me", headers=headers)).json()
    assert (me["git_name"], me["git_email"]) == ("Alice Liddell", "alice@example.com")
    await page.get_by_label("Commit author").fill("Alice <mallory@example.com>")
    await page.get_by_role("button", name="Save git identity").click()
    await expect(page.get_by_role("alert")).to_contain_text("without < or >")
    # Emptied fields go back to the default.
    await page.get_by_label("Commit author").fill("")
    await page.get_by_label("Commit email").fill("")
    await page.get_by_role("button", name="Save git identity").click()
    await expect(page.get_by_role("status")).to_contain_text("Git identity saved")
    me = (await alice.api.get("/api/me", headers=headers)).json()
    assert (me["git_name"], me["git_email"]) == (None, None)
