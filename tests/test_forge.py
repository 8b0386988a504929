"""The forge round trip against a real git server over smart HTTP and fakes shaped like GitHub's and
GitLab's REST APIs: push with a lease, pull requests, follow-up re-push, auto pull requests, rebase with
and without a conflict, the setup command, and tasks started from signed webhook deliveries."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from aicode.app import create_app
from aicode.settings import Settings
from tests.conftest import ADMIN, login, make_user, wait_for_status
from tests.fakes.forges import FakeGitHub, FakeGitLab, github_comment_delivery, gitlab_note_delivery
from tests.fakes.git_http import GitHttpServer
from tests.tasks_support import events, finished, of_type, submit, submit_follow_up

pytestmark = pytest.mark.timeout(180)

REPO = "acme/app"
SITE = "https://aicode.example"


@dataclass
class Forge:
    client: AsyncTestClient
    git: GitHttpServer
    github: FakeGitHub
    gitlab: FakeGitLab
    admin: dict[str, str]
    alice: dict[str, str]
    workspace: dict[str, Any]

    async def task(self, prompt: str, **fields: Any) -> dict[str, Any]:
        task = await submit(self.client, self.alice, self.workspace["id"], prompt, **fields)
        done = await finished(self.client, self.alice, task["id"])
        assert done["status"] == "succeeded", done
        return done

    def remote_branch(self, task: dict[str, Any]) -> str | None:
        return self.git.ref(REPO, f"refs/heads/{task['branch']}")

    async def get(self, task: dict[str, Any]) -> dict[str, Any]:
        return (await self.client.get(f"/api/tasks/{task['id']}", headers=self.alice)).json()

    async def set_forge(self, **change: Any) -> dict[str, Any]:
        response = await self.client.patch(f"/api/workspaces/{self.workspace['id']}", json=change, headers=self.alice)
        assert response.status_code == 200, response.text
        return response.json()


async def eventually(check: Callable[[], Any], timeout: float = 30) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the condition did not come true in time")
        await asyncio.sleep(0.1)


@pytest.fixture
async def forge(task_settings: Settings, tmp_path: Path) -> AsyncIterator[Forge]:
    async with GitHttpServer(tmp_path / "remote") as git, FakeGitHub(token="gh-token") as github, \
            FakeGitLab(token="gl-token") as gitlab:
        git.create_repo(REPO, {"README.md": "hello\n", "app.py": "print(1)\n"})
        github.add_repo(REPO, git=git, git_name=REPO)
        gitlab.add_project(REPO, git=git, git_name=REPO)
        settings = dataclasses.replace(task_settings, allow_insecure_remotes=True, allowed_git_hosts=("127.0.0.1",),
                                       public_url=SITE)
        async with AsyncTestClient(app=create_app(settings)) as client:
            admin = await login(client, *ADMIN)
            alice = await make_user(client, admin, "alice")
            stored = await client.put("/api/me/credentials/anthropic", json={"api_key": "sk-alice"}, headers=alice)
            assert stored.status_code == 204
            created = await client.post("/api/workspaces", headers=alice, json={
                "name": "app", "repo_url": git.repo_url(REPO, auth=True),
                "forge": {"kind": "github", "repo": REPO, "api_url": github.url, "token": "gh-token"}})
            assert created.status_code == 201, created.text
            workspace = await wait_for_status(client, alice, created.json()["id"])
            assert workspace["status"] == "ready", workspace
            yield Forge(client, git, github, gitlab, admin, alice, workspace)


# -- push -----------------------------------------------------------------------------------------


async def test_push_puts_the_task_branch_on_the_remote_and_a_follow_up_pushes_again(forge: Forge) -> None:
    task = await forge.task("@write greet.py print('hi')")
    pushed = await forge.client.post(f"/api/tasks/{task['id']}/push", headers=forge.alice)
    assert pushed.status_code == 200, pushed.text
    assert pushed.json() == {"remote_branch": task["branch"], "commit": task["head_commit"], "created": True,
                             "forced": False, "up_to_date": False}
    assert forge.remote_branch(task) == task["head_commit"]
    assert forge.git.read_file(REPO, task["head_commit"], "greet.py") == "print('hi')"
    # The push authenticated with the workspace's credentials, which never reached the agent's events.
    assert any(r.service == "git-receive-pack" and r.user == "git-user" for r in forge.git.requests)
    assert "git-token" not in json.dumps(await events(forge.client, forge.alice, task["id"]))

    again = await submit_follow_up(forge.client, forge.alice, task["id"], "@write greet.py print('hello')")
    assert again["status"] == "succeeded" and again["head_commit"] != task["head_commit"]
    await eventually(lambda: forge.remote_branch(task) == again["head_commit"])
    shown = await eventually(lambda: _pushed(forge, task, again["head_commit"]))
    assert shown["remote_branch"] == task["branch"]
    assert of_type(await events(forge.client, forge.alice, task["id"]), "git.push")[-1]["data"]["commit"] \
        == again["head_commit"]


async def _pushed(forge: Forge, task: dict[str, Any], commit: str) -> dict[str, Any] | None:
    shown = await forge.get(task)
    return shown if shown["pushed_commit"] == commit else None


async def test_a_push_never_overwrites_commits_someone_else_pushed(forge: Forge) -> None:
    task = await forge.task("@write a.txt one")
    assert (await forge.client.post(f"/api/tasks/{task['id']}/push", headers=forge.alice)).status_code == 200
    theirs = forge.git.commit_to(REPO, task["branch"], {"b.txt": "theirs"}, "a teammate's fix")
    await submit_follow_up(forge.client, forge.alice, task["id"], "@write a.txt two")
    refused = await forge.client.post(f"/api/tasks/{task['id']}/push", headers=forge.alice)
    assert refused.status_code == 409, refused.text
    assert "did not push" in refused.json()["detail"]
    assert forge.remote_branch(task) == theirs
    # The automatic re-push after the follow-up was refused the same way and said so on the task.
    notices = of_type(await events(forge.client, forge.alice, task["id"]), "notice")
    assert any(n["data"]["code"] == "push_failed" for n in notices)


async def test_a_protected_branch_refusal_names_the_cause(forge: Forge) -> None:
    task = await forge.task("@write a.txt one")
    forge.git.protect(REPO, task["branch"])
    refused = await forge.client.post(f"/api/tasks/{task['id']}/push", headers=forge.alice)
    assert refused.status_code == 409, refused.text
    assert "protected branch" in refused.json()["detail"].lower()
    assert forge.remote_branch(task) is None


async def test_a_viewer_may_not_push_and_a_local_repository_cannot_be_pushed(forge: Forge, source_repo: Path) -> None:
    task = await forge.task("@write a.txt one")
    bob = await make_user(forge.client, forge.admin, "bob")
    shared = await forge.client.put(f"/api/workspaces/{forge.workspace['id']}/members/bob", json={"role": "viewer"},
                                    headers=forge.alice)
    assert shared.status_code == 200
    refused = await forge.client.post(f"/api/tasks/{task['id']}/push", headers=bob)
    assert refused.status_code == 403 and "editor" in refused.json()["detail"]
    assert forge.remote_branch(task) is None

    local = await forge.client.post("/api/workspaces", headers=forge.admin,
                                    json={"name": "local", "repo_url": str(source_repo)})
    ready = await wait_for_status(forge.client, forge.admin, local.json()["id"])
    await forge.client.put("/api/me/credentials/anthropic", json={"api_key": "sk-admin"}, headers=forge.admin)
    other = await submit(forge.client, forge.admin, ready["id"], "@write x.txt y")
    await finished(forge.client, forge.admin, other["id"])
    refused = await forge.client.post(f"/api/tasks/{other['id']}/push", headers=forge.admin)
    assert refused.status_code == 409 and "https" in refused.json()["detail"]


# -- pull requests --------------------------------------------------------------------------------


async def test_a_pull_request_says_what_was_asked_and_is_reused_for_the_branch(forge: Forge) -> None:
    task = await forge.task("Add a greeting\n@write greet.py print('hi')")
    opened = await forge.client.post(f"/api/tasks/{task['id']}/pull-request", json={"draft": True},
                                     headers=forge.alice)
    assert opened.status_code == 201, opened.text
    pull = opened.json()
    assert pull["number"] > 0 and pull["state"] == "draft" and pull["draft"] and not pull["reused"]
    served = forge.github.pulls[(REPO, pull["number"])]
    assert pull["url"] == served["html_url"]
    assert served["head"]["ref"] == task["branch"] and served["base"]["ref"] == "main" and served["draft"]
    assert served["title"] == "Add a greeting"
    body = served["body"]
    assert "Add a greeting" in body and "greet.py" in body and f"{SITE}/tasks/{task['id']}" in body and "$" in body
    sent = forge.github.requests_to("POST", "/pulls")[-1]
    assert sent.headers["authorization"] == "Bearer gh-token"
    assert forge.remote_branch(task) == task["head_commit"]  # pushed first

    shown = await forge.get(task)
    assert shown["pull_request"] == {"url": pull["url"], "number": pull["number"], "state": "draft", "draft": True}
    again = await forge.client.post(f"/api/tasks/{task['id']}/pull-request", headers=forge.alice)
    assert again.status_code == 201 and again.json()["reused"] and again.json()["number"] == pull["number"]
    assert len(forge.github.open_pulls(REPO)) == 1


async def test_forge_refusals_come_back_naming_the_cause(forge: Forge) -> None:
    task = await forge.task("@write a.txt one")
    forge.github.forbid_pulls = True
    refused = await forge.client.post(f"/api/tasks/{task['id']}/pull-request", headers=forge.alice)
    assert refused.status_code == 403, refused.text
    assert "GitHub" in refused.json()["detail"] and "permission" in refused.json()["detail"]
    forge.github.forbid_pulls = False
    forge.github.fail_with = 502
    failed = await forge.client.post(f"/api/tasks/{task['id']}/pull-request", headers=forge.alice)
    assert failed.status_code == 502 and "GitHub" in failed.json()["detail"]
    forge.github.fail_with = None
    await forge.set_forge(forge={"kind": "github", "repo": "acme/missing", "api_url": forge.github.url,
                                 "token": "gh-token"})
    missing = await forge.client.post(f"/api/tasks/{task['id']}/pull-request", headers=forge.alice)
    assert missing.status_code == 409 and "acme/missing" in missing.json()["detail"]
    assert (await forge.get(task))["pull_request"] is None


async def test_auto_pr_pushes_and_opens_a_draft_after_a_successful_turn(forge: Forge) -> None:
    await forge.set_forge(auto_pr="draft")
    task = await forge.task("@write feature.txt new")
    shown = await eventually(lambda: _with_pull(forge, task))
    pull = forge.github.pulls[(REPO, shown["pull_request"]["number"])]
    assert pull["draft"] and pull["head"]["ref"] == task["branch"]
    assert forge.remote_branch(task) == task["head_commit"]
    # A turn that fails opens nothing.
    failing = await submit(forge.client, forge.alice, forge.workspace["id"], "@write x.txt y\n@exit 3")
    assert (await finished(forge.client, forge.alice, failing["id"]))["status"] == "failed"
    await asyncio.sleep(1)
    assert forge.remote_branch(failing) is None and len(forge.github.open_pulls(REPO)) == 1


async def _with_pull(forge: Forge, task: dict[str, Any]) -> dict[str, Any] | None:
    shown = await forge.get(task)
    return shown if shown["pull_request"] else None


async def test_gitlab_merge_requests_are_drafts_by_title_and_reused(forge: Forge) -> None:
    await forge.set_forge(forge={"kind": "gitlab", "repo": REPO, "api_url": forge.gitlab.api_url,
                                 "token": "gl-token"})
    task = await forge.task("Tidy up\n@write tidy.txt ok")
    opened = await forge.client.post(f"/api/tasks/{task['id']}/pull-request", json={"draft": True},
                                     headers=forge.alice)
    assert opened.status_code == 201, opened.text
    merge_request = forge.gitlab.merge_requests[(REPO, opened.json()["number"])]
    assert merge_request["source_branch"] == task["branch"] and merge_request["target_branch"] == "main"
    assert merge_request["title"] == "Draft: Tidy up" and merge_request["draft"]
    assert opened.json()["state"] == "draft" and opened.json()["url"] == merge_request["web_url"]
    assert forge.gitlab.requests[-1].headers["private-token"] == "gl-token"
    again = await forge.client.post(f"/api/tasks/{task['id']}/pull-request", headers=forge.alice)
    assert again.json()["reused"] and again.json()["number"] == opened.json()["number"]


# -- rebase ---------------------------------------------------------------------------------------


async def test_rebase_moves_the_task_onto_the_latest_base_and_pushes_again(forge: Forge) -> None:
    task = await forge.task("@write feature.txt new")
    assert (await forge.client.post(f"/api/tasks/{task['id']}/push", headers=forge.alice)).status_code == 200
    upstream = forge.git.commit_to(REPO, "main", {"other.txt": "from main"}, "meanwhile on main")
    rebased = await forge.client.post(f"/api/tasks/{task['id']}/rebase", headers=forge.alice)
    assert rebased.status_code == 200, rebased.text
    done = rebased.json()
    assert done["rebased"] and done["onto"] == upstream and done["base_commit"] == upstream and done["replayed"] == 1
    assert done["pushed"]["forced"] and done["pushed"]["commit"] == done["head_commit"]
    assert forge.remote_branch(task) == done["head_commit"]
    assert forge.git.is_ancestor(REPO, upstream, done["head_commit"])
    shown = await forge.get(task)
    assert shown["base_commit"] == upstream and shown["head_commit"] == done["head_commit"]
    files = (await forge.client.get(f"/api/tasks/{task['id']}/files", headers=forge.alice)).json()
    assert [f["path"] for f in files] == ["feature.txt"]
    # The next turn starts from the rebased files.
    follow = await submit_follow_up(forge.client, forge.alice, task["id"], "@read other.txt")
    assert follow["status"] == "succeeded"
    results = of_type(await events(forge.client, forge.alice, task["id"]), "tool.result")
    assert "from main" in results[-1]["data"]["output"]
    again = await forge.client.post(f"/api/tasks/{task['id']}/rebase", headers=forge.alice)
    assert again.status_code == 200 and not again.json()["rebased"]


async def test_a_rebase_conflict_names_the_paths_and_leaves_the_task_as_it_was(forge: Forge) -> None:
    task = await forge.task("@write README.md mine")
    forge.git.commit_to(REPO, "main", {"README.md": "theirs\n"}, "conflicting change")
    refused = await forge.client.post(f"/api/tasks/{task['id']}/rebase", headers=forge.alice)
    assert refused.status_code == 409, refused.text
    assert refused.json()["conflicts"] == ["README.md"] and "README.md" in refused.json()["detail"]
    shown = await forge.get(task)
    assert shown["head_commit"] == task["head_commit"] and shown["base_commit"] == task["base_commit"]
    diff = (await forge.client.get(f"/api/tasks/{task['id']}/diff", headers=forge.alice)).text
    assert "+mine" in diff


# -- the setup command ----------------------------------------------------------------------------


async def test_the_setup_command_runs_before_the_first_turn_and_streams_its_output(forge: Forge) -> None:
    await forge.set_forge(setup="echo preparing; echo ready > /tmp/setup-proof")
    task = await forge.task("@bash cat /tmp/setup-proof")
    evs = await events(forge.client, forge.alice, task["id"])
    kinds = [e["type"] for e in evs]
    assert kinds.index("setup.started") < kinds.index("setup.finished") < kinds.index("agent.started")
    assert [e["data"]["text"] for e in of_type(evs, "setup.output")] == ["preparing"]
    assert of_type(evs, "setup.finished")[0]["data"]["ok"] is True
    assert "ready" in of_type(evs, "tool.result")[0]["data"]["output"]
    await submit_follow_up(forge.client, forge.alice, task["id"], "@say again")
    assert len(of_type(await events(forge.client, forge.alice, task["id"]), "setup.started")) == 1


async def test_a_failing_setup_command_fails_the_task_with_its_output(forge: Forge) -> None:
    await forge.set_forge(setup="echo 'npm ERR! missing dependency' >&2; exit 3")
    task = await submit(forge.client, forge.alice, forge.workspace["id"], "@write a.txt never")
    done = await finished(forge.client, forge.alice, task["id"])
    assert done["status"] == "failed"
    assert "exit code 3" in done["error"] and "missing dependency" in done["error"]
    evs = await events(forge.client, forge.alice, task["id"])
    assert not of_type(evs, "agent.started") and done["head_commit"] is None


# -- tasks from forge comments --------------------------------------------------------------------


async def _webhook(forge: Forge) -> str:
    made = await forge.client.post(f"/api/workspaces/{forge.workspace['id']}/webhook", headers=forge.alice)
    assert made.status_code == 201, made.text
    assert made.json()["url"] == f"{SITE}/api/hooks/github/{forge.workspace['id']}"
    return str(made.json()["secret"])


async def _deliver(forge: Forge, kind: str, body: bytes, headers: dict[str, str]) -> Any:
    return await forge.client.post(f"/api/hooks/{kind}/{forge.workspace['id']}", content=body, headers=headers)


async def test_a_signed_comment_starts_a_task_that_opens_a_pull_request_and_answers(forge: Forge) -> None:
    secret = await _webhook(forge)
    linked = await forge.client.put("/api/me/forge-identities", json={"github": "alice-gh"}, headers=forge.alice)
    assert linked.status_code == 200 and linked.json() == {"github": "alice-gh", "gitlab": None}
    issue = forge.github.add_issue(REPO, "Greeting is missing", "Please add greet.py")
    body, headers = github_comment_delivery(secret, repo=REPO, number=issue, title="Greeting is missing",
                                            body="Please add greet.py", comment="@aicode @write greet.py hi",
                                            login="alice-gh")
    accepted = await _deliver(forge, "github", body, headers)
    assert accepted.status_code == 202, accepted.text
    task_id = accepted.json()["task_id"]
    task = (await forge.client.get(f"/api/tasks/{task_id}", headers=forge.alice)).json()
    assert "Greeting is missing" in task["prompt"] and "Please add greet.py" in task["prompt"]
    assert task["origin"]["login"] == "alice-gh" and task["origin"]["number"] == issue
    assert (await finished(forge.client, forge.alice, task_id))["status"] == "succeeded"
    reply = await eventually(lambda: forge.github.comments.get((REPO, issue)))
    shown = await forge.get(task)
    assert shown["pull_request"] and shown["pull_request"]["draft"]
    assert f"{SITE}/tasks/{task_id}" in reply[0]["body"] and shown["pull_request"]["url"] in reply[0]["body"]
    assert len(reply) == 1

    replayed = await _deliver(forge, "github", body, headers)
    assert replayed.status_code == 409 and "before" in replayed.json()["detail"]
    tasks = (await forge.client.get("/api/tasks", headers=forge.alice)).json()
    assert [t["id"] for t in tasks] == [task_id]

    # A comment on the task's own pull request is a follow-up of the task: the pull request gets the new commit.
    number = shown["pull_request"]["number"]
    body, headers = github_comment_delivery(secret, repo=REPO, number=number, title="Greeting is missing",
                                            body="(the task's description)", is_pull_request=True,
                                            comment="@aicode @write greet.py hello", login="alice-gh")
    followed = await _deliver(forge, "github", body, headers)
    assert followed.status_code == 202 and followed.json()["task_id"] == task_id
    again = await finished(forge.client, forge.alice, task_id)
    assert again["status"] == "succeeded" and again["turns"] == 2
    await eventually(lambda: forge.remote_branch(task) == again["head_commit"])
    answer = await eventually(lambda: forge.github.comments.get((REPO, number)))
    assert f"/tasks/{task_id}" in answer[0]["body"] and len(forge.github.open_pulls(REPO)) == 1


async def test_unsigned_and_badly_signed_deliveries_are_refused(forge: Forge) -> None:
    secret = await _webhook(forge)
    body, headers = github_comment_delivery(secret, repo=REPO, number=1, title="t", body="b",
                                            comment="@aicode do it", login="alice-gh")
    unsigned = {k: v for k, v in headers.items() if not k.lower().startswith("x-hub-signature")}
    assert (await _deliver(forge, "github", body, unsigned)).status_code == 401
    _, forged = github_comment_delivery("not-the-secret", repo=REPO, number=1, title="t", body="b",
                                        comment="@aicode do it", login="alice-gh")
    forged["X-GitHub-Delivery"] = headers["X-GitHub-Delivery"]
    assert (await _deliver(forge, "github", body, forged)).status_code == 401
    tampered = body.replace(b"do it", b"do more")
    assert (await _deliver(forge, "github", tampered, headers)).status_code == 401
    assert (await forge.client.get("/api/tasks", headers=forge.alice)).json() == []


async def test_unlinked_and_non_editor_commenters_get_an_answer_and_no_task(forge: Forge) -> None:
    secret = await _webhook(forge)
    issue = forge.github.add_issue(REPO, "t", "b")
    body, headers = github_comment_delivery(secret, repo=REPO, number=issue, title="t", body="b",
                                            comment="@aicode please", login="stranger")
    answer = await _deliver(forge, "github", body, headers)
    assert answer.status_code == 200 and answer.json()["status"] == "not_linked"
    replies = await eventually(lambda: forge.github.comments.get((REPO, issue)))
    assert "@stranger" in replies[0]["body"] and "not linked" in replies[0]["body"]

    bob = await make_user(forge.client, forge.admin, "bob")
    await forge.client.put(f"/api/workspaces/{forge.workspace['id']}/members/bob", json={"role": "viewer"},
                           headers=forge.alice)
    await forge.client.put("/api/me/forge-identities", json={"github": "bob-gh"}, headers=bob)
    body, headers = github_comment_delivery(secret, repo=REPO, number=issue, title="t", body="b",
                                            comment="@aicode please", login="bob-gh")
    answer = await _deliver(forge, "github", body, headers)
    assert answer.status_code == 200 and answer.json()["status"] == "not_allowed"
    replies = await eventually(lambda: len(forge.github.comments.get((REPO, issue), [])) == 2
                               and forge.github.comments[(REPO, issue)])
    assert "viewer" in replies[1]["body"]
    assert (await forge.client.get("/api/tasks", headers=forge.admin)).json() == []

    # A comment without the trigger, or another repository's, starts nothing either.
    await forge.client.put("/api/me/forge-identities", json={"github": "alice-gh"}, headers=forge.alice)
    body, headers = github_comment_delivery(secret, repo=REPO, number=issue, title="t", body="b",
                                            comment="thanks @aicode-fan", login="alice-gh")
    assert (await _deliver(forge, "github", body, headers)).json()["status"] == "ignored"


async def test_a_gitlab_note_starts_a_task_and_the_merge_request_is_linked_in_the_answer(forge: Forge) -> None:
    await forge.set_forge(forge={"kind": "gitlab", "repo": REPO, "api_url": forge.gitlab.api_url,
                                 "token": "gl-token"})
    made = await forge.client.post(f"/api/workspaces/{forge.workspace['id']}/webhook", headers=forge.alice)
    secret = made.json()["secret"]
    await forge.client.put("/api/me/forge-identities", json={"gitlab": "alice.gl"}, headers=forge.alice)
    issue = forge.gitlab.add_issue(REPO, "Add tidy.txt", "it is missing")
    body, headers = gitlab_note_delivery(secret, project=REPO, iid=issue, title="Add tidy.txt",
                                         description="it is missing", note="@aicode @write tidy.txt ok",
                                         username="alice.gl")
    bad = dict(headers, **{"X-Gitlab-Token": "wrong"})
    assert (await _deliver(forge, "gitlab", body, bad)).status_code == 401
    accepted = await _deliver(forge, "gitlab", body, headers)
    assert accepted.status_code == 202, accepted.text
    task_id = accepted.json()["task_id"]
    assert (await finished(forge.client, forge.alice, task_id))["status"] == "succeeded"
    notes = await eventually(lambda: forge.gitlab.notes.get((REPO, "issues", issue)))
    merge_request = next(iter(forge.gitlab.merge_requests.values()))
    assert merge_request["web_url"] in notes[0]["body"] and f"/tasks/{task_id}" in notes[0]["body"]
    assert (await _deliver(forge, "gitlab", body, headers)).status_code == 409


# -- settings -------------------------------------------------------------------------------------


async def test_forge_settings_are_checked_and_the_token_never_shown(forge: Forge, settings: Settings) -> None:
    shown = forge.workspace["forge"]
    assert shown == {"kind": "github", "repo": REPO, "api_url": forge.github.url, "trigger": "@aicode",
                     "has_token": True}
    assert "gh-token" not in json.dumps(forge.workspace)
    bad = await forge.client.patch(f"/api/workspaces/{forge.workspace['id']}", headers=forge.alice,
                                   json={"forge": {"kind": "bitbucket", "repo": REPO}})
    assert bad.status_code == 400
    removed = await forge.set_forge(forge=None)
    assert removed["forge"] is None and removed["webhook"] is None
    # Without AICODE_ALLOW_INSECURE_REMOTES an http forge API is refused.
    async with AsyncTestClient(app=create_app(settings)) as strict:
        admin = await login(strict, *ADMIN)
        refused = await strict.post("/api/workspaces", headers=admin, json={
            "name": "w", "repo_url": "https://example.com/x.git",
            "forge": {"kind": "gitlab", "repo": "g/p", "api_url": "http://gitlab.example.com/api/v4"}})
        assert refused.status_code == 400 and "https" in refused.json()["detail"]
        private = await strict.post("/api/workspaces", headers=admin, json={
            "name": "w", "repo_url": "https://example.com/x.git",
            "forge": {"kind": "github", "repo": "o/r", "api_url": "https://127.0.0.1/api/v3"}})
        assert private.status_code == 400 and "AICODE_ALLOWED_GIT_HOSTS" in private.json()["detail"]


async def test_a_forge_login_speaks_for_one_user(forge: Forge) -> None:
    bob = await make_user(forge.client, forge.admin, "bob")
    assert (await forge.client.put("/api/me/forge-identities", json={"github": "Same"}, headers=forge.alice)
            ).status_code == 200
    taken = await forge.client.put("/api/me/forge-identities", json={"github": "same"}, headers=bob)
    assert taken.status_code == 409
    unlinked = await forge.client.put("/api/me/forge-identities", json={"github": None}, headers=forge.alice)
    assert unlinked.json() == {"github": None, "gitlab": None}
    assert (await forge.client.put("/api/me/forge-identities", json={"github": "same"}, headers=bob)
            ).status_code == 200
    bad = await forge.client.put("/api/me/forge-identities", json={"github": "-bad login"}, headers=bob)
    assert bad.status_code == 400
