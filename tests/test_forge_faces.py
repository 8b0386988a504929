"""The faces of the forge round trip, against a live server, a real git server over smart HTTP and a fake GitHub:
the `aicode push`, `aicode pr` and `aicode rebase` commands run as real processes, and, in a real Chromium, the
task page's Push and Open pull request buttons, the workspace page's Forge section and webhook set-up, and the
Settings page's Forge logins."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, expect

from aicode.settings import Settings
from tests.browser_support import LiveServer, Session, make_member, new_session, sign_in
from tests.cli_support import aicode, assert_one_error_line
from tests.fakes.forges import FakeGitHub, github_comment_delivery
from tests.fakes.git_http import GitHttpServer

# The `browser` fixture.
pytest_plugins = ["tests.browser_fixtures"]
pytestmark = pytest.mark.timeout(180)

REPO = "acme/app"
SITE = "https://aicode.example"
TERMINAL = {"succeeded", "failed", "cancelled", "interrupted"}


@dataclass
class Stage:
    """A live server whose settings allow the local git server and fake GitHub, and alice signed in to it."""

    server: LiveServer
    git: GitHttpServer
    github: FakeGitHub
    api: httpx.AsyncClient
    alice: dict[str, str]  # alice's Authorization header (a JWT)
    token: str  # alice's API token, for the CLI
    home: Path

    def remote_branch(self, task: dict[str, Any]) -> str | None:
        return self.git.ref(REPO, f"refs/heads/{task['branch']}")

    async def make_workspace(self, name: str = "app", *, repo_url: str | None = None,
                             forge: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, "repo_url": repo_url or self.git.repo_url(REPO, auth=True)}
        if forge:
            body["forge"] = {"kind": "github", "repo": REPO, "api_url": self.github.url, "token": "gh-token"}
        created = await self.api.post("/api/workspaces", json=body, headers=self.alice)
        assert created.status_code == 201, created.text
        async with asyncio.timeout(30):
            while (workspace := await self.workspace(created.json()["id"]))["status"] == "cloning":
                await asyncio.sleep(0.05)
        assert workspace["status"] == "ready", workspace
        return workspace

    async def workspace(self, workspace_id: str) -> dict[str, Any]:
        response = await self.api.get(f"/api/workspaces/{workspace_id}", headers=self.alice)
        assert response.status_code == 200, response.text
        return response.json()

    async def task(self, task_id: str) -> dict[str, Any]:
        response = await self.api.get(f"/api/tasks/{task_id}", headers=self.alice)
        assert response.status_code == 200, response.text
        return response.json()

    async def finished(self, task_id: str) -> dict[str, Any]:
        async with asyncio.timeout(90):
            while (task := await self.task(task_id))["status"] not in TERMINAL:
                await asyncio.sleep(0.1)
        return task

    async def run(self, workspace: dict[str, Any], prompt: str) -> dict[str, Any]:
        """A task of alice's in `workspace`, once it has succeeded."""
        submitted = await self.api.post(f"/api/workspaces/{workspace['id']}/tasks", json={"prompt": prompt},
                                        headers=self.alice)
        assert submitted.status_code == 202, submitted.text
        done = await self.finished(submitted.json()["id"])
        assert done["status"] == "succeeded", done
        assert done["head_commit"] and done["head_commit"] != done["base_commit"], done
        return done

    def env(self) -> dict[str, str]:
        """The CLI's environment: a private HOME, this server and alice's token, no other AICODE_*."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AICODE_", "XDG_", "NO_COLOR", "PAGER"))}
        env.update({"HOME": str(self.home), "XDG_CONFIG_HOME": str(self.home / "xdg"),
                    "AICODE_SERVER": self.server.url, "AICODE_TOKEN": self.token})
        return env

    async def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The real `aicode` client, as a process (in a thread, so this loop stays free)."""
        return await asyncio.to_thread(aicode, self.env(), *args)


async def eventually(check: Callable[[], Any], timeout: float = 30) -> Any:
    async with asyncio.timeout(timeout):
        while not (value := check()):
            await asyncio.sleep(0.1)
    return value


@pytest.fixture
def forge_settings(task_settings: Settings) -> Settings:
    return dataclasses.replace(task_settings, allow_insecure_remotes=True, allowed_git_hosts=("127.0.0.1",),
                               public_url=SITE)


@pytest.fixture
async def stage(forge_settings: Settings, tmp_path: Path) -> AsyncIterator[Stage]:
    async with GitHttpServer(tmp_path / "remote") as git, FakeGitHub(token="gh-token") as github:
        git.create_repo(REPO, {"README.md": "hello\n", "app.py": "print(1)\n"})
        github.add_repo(REPO, git=git, git_name=REPO)
        server = LiveServer(forge_settings)
        await server.start()
        try:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as api:
                alice = await make_member(api, "alice")
                made = await api.post("/api/tokens", json={"name": "cli"}, headers=alice)
                assert made.status_code == 201, made.text
                home = tmp_path / "home"
                home.mkdir()
                yield Stage(server, git, github, api, alice, made.json()["token"], home)
        finally:
            # The server first: nothing of it may still be calling the fakes when they close.
            await server.stop()


@pytest.fixture
async def alice_page(browser: Browser, stage: Stage) -> AsyncIterator[Session]:
    """A browser context signed in as alice."""
    session = await new_session(browser, stage.server)
    try:
        await sign_in(session, "alice", "alice-password")
        yield session
    finally:
        await session.api.aclose()
        await session.close()
    assert session.errors == []


# -- the CLI --------------------------------------------------------------------------------------


async def test_cli_pushes_opens_a_pull_request_once_and_rebases(stage: Stage) -> None:
    workspace = await stage.make_workspace()
    task = await stage.run(workspace, "Add a greeting\n@write greet.py print('hi')")

    pushed = await stage.cli("push", task["id"])
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.stdout.strip() == f"pushed {task['head_commit'][:12]} to {task['branch']} (created)"
    assert pushed.stderr == ""
    assert stage.remote_branch(task) == task["head_commit"]
    assert stage.git.read_file(REPO, task["head_commit"], "greet.py") == "print('hi')"

    opened = await stage.cli("pr", task["id"], "--draft", "--json", "--title", "Greet people",
                             "--body", "Adds greet.py.")
    assert opened.returncode == 0, opened.stderr
    pull = json.loads(opened.stdout)
    assert pull["state"] == "draft" and pull["draft"] is True and pull["reused"] is False and pull["number"] >= 1
    served = stage.github.pulls[(REPO, pull["number"])]
    assert pull["url"] == served["html_url"]
    assert served["title"] == "Greet people" and served["body"] == "Adds greet.py." and served["draft"] is True
    assert served["head"]["ref"] == task["branch"] and served["base"]["ref"] == "main"
    assert (await stage.task(task["id"]))["pull_request"] == {
        "url": pull["url"], "number": pull["number"], "state": "draft", "draft": True}

    again = await stage.cli("pr", task["id"])
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == f"#{pull['number']} already open (draft): {pull['url']}"
    assert len(stage.github.open_pulls(REPO)) == 1

    upstream = stage.git.commit_to(REPO, "main", {"other.txt": "from main\n"}, "meanwhile on main")
    rebased = await stage.cli("rebase", task["id"][:8])  # an id prefix is enough
    assert rebased.returncode == 0, rebased.stderr
    moved = await stage.task(task["id"])
    assert moved["base_commit"] == upstream and moved["head_commit"] != task["head_commit"]
    assert rebased.stdout.strip() == f"rebased 1 commit onto {upstream[:12]}; pushed {moved['head_commit'][:12]}"
    assert stage.remote_branch(task) == moved["head_commit"]
    assert stage.git.is_ancestor(REPO, upstream, moved["head_commit"])

    # --json on push and rebase: the API's answers as they are.
    current = await stage.cli("rebase", task["id"], "--json")
    assert current.returncode == 0, current.stderr
    assert json.loads(current.stdout) == {"rebased": False, "onto": upstream, "base_commit": upstream,
                                          "head_commit": moved["head_commit"], "replayed": 0, "pushed": None}
    repushed = await stage.cli("push", task["id"], "--json")
    assert repushed.returncode == 0, repushed.stderr
    assert json.loads(repushed.stdout) == {"remote_branch": task["branch"], "commit": moved["head_commit"],
                                           "created": False, "forced": False, "up_to_date": True}
    said = await stage.cli("push", task["id"])
    assert said.returncode == 0 and "nothing to push" in said.stdout, said.stdout


async def test_cli_refusals_are_one_line_without_a_traceback(stage: Stage, source_repo: Path) -> None:
    workspace = await stage.make_workspace()
    task = await stage.run(workspace, "@write README.md mine")
    stage.git.commit_to(REPO, "main", {"README.md": "theirs\n"}, "conflicting change")
    conflict = await stage.cli("rebase", task["id"])
    assert_one_error_line(conflict, 1, "README.md")
    assert "conflict" in conflict.stderr and conflict.stdout == ""
    kept = await stage.task(task["id"])
    assert kept["head_commit"] == task["head_commit"] and kept["base_commit"] == task["base_commit"]
    as_json = await stage.cli("rebase", task["id"], "--json")
    assert_one_error_line(as_json, 1, "README.md")

    local = await stage.make_workspace("local", repo_url=str(source_repo), forge=False)
    other = await stage.run(local, "@write x.txt y")
    refused = await stage.cli("push", other["id"])
    assert_one_error_line(refused, 1, "pushes only to https remotes")
    assert "folder on the server" in refused.stderr and refused.stdout == ""
    assert (await stage.task(other["id"]))["remote_branch"] is None


# -- the task page --------------------------------------------------------------------------------


async def test_the_task_page_pushes_and_opens_a_pull_request(stage: Stage, alice_page: Session) -> None:
    workspace = await stage.make_workspace()
    task = await stage.run(workspace, "Add a greeting\n@write greet.py print('hi')")
    page = alice_page.page
    await page.goto(f"/tasks/{task['id']}")
    note = page.locator("[data-publish-note]")
    error = page.locator("[data-publish-error]")
    await expect(note).to_be_hidden()

    push = page.get_by_role("button", name="Push", exact=True)
    await expect(push).to_be_enabled()
    await push.click()
    await expect(note).to_have_text(f"Pushed to {task['branch']} ({task['head_commit'][:12]}).")
    assert stage.remote_branch(task) == task["head_commit"]
    await expect(error).to_be_hidden()

    # A forge refusal shows what the forge said, and opens nothing.
    open_pr = page.get_by_role("button", name="Open pull request")
    stage.github.forbid_pulls = True
    await open_pr.click()
    await expect(error).to_be_visible()
    await expect(error).to_contain_text("GitHub")
    await expect(error).to_contain_text("permission")
    await expect(open_pr).to_be_enabled()
    assert stage.github.pulls == {}

    stage.github.forbid_pulls = False
    await open_pr.click()
    link = page.get_by_role("link", name=re.compile(r"^Pull request #\d+"))
    await expect(link).to_be_visible()
    [((_, number), served)] = stage.github.pulls.items()
    assert served["head"]["ref"] == task["branch"] and not served["draft"]
    await expect(link).to_have_text(f"Pull request #{number}")
    await expect(link).to_have_attribute("href", served["html_url"])
    await expect(open_pr).to_be_hidden()
    await expect(error).to_be_hidden()

    # As the server renders it afterwards.
    await page.reload()
    await expect(page.get_by_role("link", name=f"Pull request #{number}")).to_have_attribute("href",
                                                                                            served["html_url"])
    await expect(page.get_by_role("button", name="Open pull request")).to_be_hidden()
    await expect(note).to_have_text(f"Pushed to {task['branch']} ({task['head_commit'][:12]}).")


# -- the workspace page ---------------------------------------------------------------------------


async def test_the_workspace_page_saves_the_forge_and_sets_up_a_webhook_that_works(
        stage: Stage, alice_page: Session) -> None:
    workspace = await stage.make_workspace(forge=False)
    page = alice_page.page
    await page.goto(f"/workspaces/{workspace['id']}")
    form = page.get_by_test_id("forge-form")
    await expect(page.get_by_test_id("webhook-url")).to_have_count(0)  # no forge yet, no webhook
    await form.get_by_label("Forge", exact=True).select_option("github")
    await form.get_by_label("Repository (owner/name or project path)").fill(REPO)
    await form.get_by_label("API URL").fill(stage.github.url)
    await form.get_by_label("Token").fill("gh-token")
    await form.get_by_label("Pull request after each successful turn").select_option("draft")
    await form.get_by_label("Setup command").fill("echo preparing")
    await form.get_by_role("button", name="Save forge settings").click()

    url = page.get_by_test_id("webhook-url")
    await expect(url).to_have_text(f"{SITE}/api/hooks/github/{workspace['id']}")
    await expect(page.get_by_text("No secret is set up yet")).to_be_visible()
    saved = await stage.workspace(workspace["id"])
    assert saved["forge"] == {"kind": "github", "repo": REPO, "api_url": stage.github.url, "trigger": "@aicode",
                              "has_token": True}
    assert saved["auto_pr"] == "draft" and saved["setup"] == "echo preparing"
    assert saved["webhook"] == {"path": f"/api/hooks/github/{workspace['id']}", "configured": False}
    # The form shows what is stored, never the token.
    await expect(form.get_by_label("Repository (owner/name or project path)")).to_have_value(REPO)
    await expect(form.get_by_label("Pull request after each successful turn")).to_have_value("draft")
    await expect(form.get_by_label("Token")).to_have_value("")
    assert "gh-token" not in await page.content()

    await page.get_by_role("button", name="Set up the webhook").click()
    shown = page.get_by_test_id("webhook-secret")
    await expect(shown).to_be_visible()
    secret = (await shown.text_content() or "").strip()
    assert len(secret) >= 16
    await expect(url).to_have_text(f"{SITE}/api/hooks/github/{workspace['id']}")
    assert (await stage.workspace(workspace["id"]))["webhook"]["configured"] is True
    hook = f"/api/hooks/github/{workspace['id']}"

    # The secret shown authenticates deliveries; another one does not.
    issue = stage.github.add_issue(REPO, "Greeting is missing", "Please add greet.py")
    _, forged = github_comment_delivery("not-the-secret", repo=REPO, number=issue, title="Greeting is missing",
                                        body="Please add greet.py", comment="@aicode please", login="stranger")
    body, headers = github_comment_delivery(secret, repo=REPO, number=issue, title="Greeting is missing",
                                            body="Please add greet.py", comment="@aicode please", login="stranger")
    forged["X-GitHub-Delivery"] = headers["X-GitHub-Delivery"]
    assert (await stage.api.post(hook, content=body, headers=forged)).status_code == 401
    unlinked = await stage.api.post(hook, content=body, headers=headers)
    assert unlinked.status_code == 200, unlinked.text
    assert unlinked.json()["status"] == "not_linked"
    replies = await eventually(lambda: stage.github.comments.get((REPO, issue)))
    assert "@stranger" in replies[0]["body"]  # answered with the token saved on the page

    # A linked editor's comment starts a task that uses the settings saved on the page.
    linked = await stage.api.put("/api/me/forge-identities", json={"github": "alice-gh"}, headers=stage.alice)
    assert linked.status_code == 200, linked.text
    body, headers = github_comment_delivery(secret, repo=REPO, number=issue, title="Greeting is missing",
                                            body="Please add greet.py", comment="@aicode @write greet.py hi",
                                            login="alice-gh")
    accepted = await stage.api.post(hook, content=body, headers=headers)
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["status"] == "accepted"
    done = await stage.finished(accepted.json()["task_id"])
    assert done["status"] == "succeeded", done
    events = (await stage.api.get(f"/api/tasks/{done['id']}/events", headers=stage.alice)).json()
    assert [e["data"]["text"] for e in events if e["type"] == "setup.output"] == ["preparing"]
    pulls = await eventually(lambda: stage.github.open_pulls(REPO))
    assert pulls[0]["head"]["ref"] == done["branch"] and pulls[0]["draft"]
    await eventually(lambda: len(stage.github.comments.get((REPO, issue), [])) == 2)


async def test_saving_the_forge_again_keeps_its_token_and_none_removes_it(stage: Stage, alice_page: Session) -> None:
    workspace = await stage.make_workspace()  # a GitHub forge with a token, made through the API
    page = alice_page.page
    await page.goto(f"/workspaces/{workspace['id']}")
    form = page.get_by_test_id("forge-form")
    await expect(form.get_by_label("Forge", exact=True)).to_have_value("github")
    await expect(form.get_by_label("API URL")).to_have_value(stage.github.url)
    await form.get_by_label("Pull request after each successful turn").select_option("ready")
    await form.get_by_role("button", name="Save forge settings").click()
    await expect(form.get_by_label("Pull request after each successful turn")).to_have_value("ready")
    kept = await stage.workspace(workspace["id"])
    assert kept["auto_pr"] == "ready" and kept["forge"]["has_token"] is True and kept["forge"]["repo"] == REPO

    # An address the forge rules refuse is shown on the page, and nothing changes.
    await form.get_by_label("API URL").fill("ftp://example.com/api")
    await form.get_by_role("button", name="Save forge settings").click()
    await expect(page.get_by_role("alert").filter(has_text="api_url")).to_be_visible()
    assert (await stage.workspace(workspace["id"]))["forge"]["api_url"] == stage.github.url

    await page.goto(f"/workspaces/{workspace['id']}")
    await form.get_by_label("Forge", exact=True).select_option("")
    await form.get_by_role("button", name="Save forge settings").click()
    await expect(page.get_by_test_id("webhook-url")).to_have_count(0)
    removed = await stage.workspace(workspace["id"])
    assert removed["forge"] is None and removed["webhook"] is None


# -- the settings page ----------------------------------------------------------------------------


async def test_the_settings_page_links_and_unlinks_forge_logins(stage: Stage, alice_page: Session) -> None:
    page = alice_page.page
    await page.goto("/settings")
    form = page.get_by_test_id("forge-identities")
    await form.get_by_label("GitHub login").fill("alice-gh")
    await form.get_by_role("button", name="Save forge logins").click()
    await expect(page.get_by_role("status").filter(has_text="Forge logins saved")).to_be_visible()
    await expect(form.get_by_label("GitHub login")).to_have_value("alice-gh")
    identities = await stage.api.get("/api/me/forge-identities", headers=stage.alice)
    assert identities.status_code == 200 and identities.json() == {"github": "alice-gh", "gitlab": None}

    await form.get_by_label("GitHub login").fill("-not a login")
    await form.get_by_role("button", name="Save forge logins").click()
    await expect(page.get_by_role("alert").filter(has_text="github")).to_be_visible()
    assert (await stage.api.get("/api/me/forge-identities", headers=stage.alice)).json()["github"] == "alice-gh"

    await page.goto("/settings")
    await form.get_by_label("GitHub login").fill("")
    await form.get_by_label("GitLab login").fill("alice.gl")
    await form.get_by_role("button", name="Save forge logins").click()
    await expect(page.get_by_role("status").filter(has_text="Forge logins saved")).to_be_visible()
    assert (await stage.api.get("/api/me/forge-identities", headers=stage.alice)).json() == {
        "github": None, "gitlab": "alice.gl"}


async def test_the_setup_command_streams_live_on_the_task_page(stage: Stage, alice_page: Session) -> None:
    workspace = await stage.make_workspace()
    changed = await stage.api.patch(f"/api/workspaces/{workspace['id']}", headers=stage.alice,
                                    json={"setup": "echo preparing the dependencies; sleep 6"})
    assert changed.status_code == 200, changed.text
    submitted = await stage.api.post(f"/api/workspaces/{workspace['id']}/tasks", json={"prompt": "@say done"},
                                     headers=stage.alice)
    task_id = submitted.json()["id"]
    page = alice_page.page
    await page.goto(f"/tasks/{task_id}")
    # Seen while the command still sleeps: streamed, not loaded once the agent starts.
    await expect(page.locator("[data-type='setup.output']")).to_have_text("preparing the dependencies", timeout=5000)
    await expect(page.locator("[data-type='setup.started']")).to_contain_text("sleep 6")
    assert (await stage.task(task_id))["status"] == "running"
    assert (await stage.finished(task_id))["status"] == "succeeded"
    await expect(page.locator("[data-type='setup.finished']")).to_contain_text("Setup finished")
