"""The forge test doubles behave like the real thing.

GitHttpServer is driven by the real git CLI (clone, push, protected branch, leases, large and gzipped
bodies); FakeGitHub and FakeGitLab by httpx, checking the status codes and JSON shapes that the real APIs
answer; the webhook helpers by verifying their signatures and tokens as a receiver would.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.fakes.forges import FakeGitHub, FakeGitLab, github_comment_delivery, gitlab_note_delivery
from tests.fakes.git_http import PROTECTED_REASON, GitHttpServer

USER, TOKEN = "bot", "s3cret-token"
GH, GL = {"Authorization": "Bearer gh-token"}, {"PRIVATE-TOKEN": "gl-token"}


async def git(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The git CLI with no user config and no prompts (a refused credential fails instead of asking)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}
    env.update(GIT_TERMINAL_PROMPT="0", GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, GIT_ASKPASS="",
               SSH_ASKPASS="")
    command = ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", "-c", "credential.helper=",
               *args]
    done = await asyncio.to_thread(subprocess.run, command, cwd=cwd, env=env, capture_output=True, text=True,
                                   timeout=60)
    if check and done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[GitHttpServer]:
    async with GitHttpServer(tmp_path / "served", username=USER, token=TOKEN) as running:
        running.create_repo("acme/widgets", {"README.md": "widgets\n", "src/app.py": "print('hi')\n"})
        yield running


@pytest.fixture
async def github() -> AsyncIterator[FakeGitHub]:
    async with FakeGitHub(token="gh-token") as fake:
        fake.add_repo("acme/widgets")
        yield fake


@pytest.fixture
async def gitlab() -> AsyncIterator[FakeGitLab]:
    async with FakeGitLab(token="gl-token") as fake:
        fake.add_project("acme/tools/widgets")
        yield fake


async def clone(server: GitHttpServer, tmp_path: Path, name: str = "acme/widgets") -> Path:
    work = tmp_path / "clone"
    await git("clone", "--quiet", server.repo_url(name, auth=True), str(work))
    return work


async def commit_file(work: Path, file: str, content: str, message: str) -> str:
    (work / file).parent.mkdir(parents=True, exist_ok=True)
    (work / file).write_text(content)
    await git("add", file, cwd=work)
    await git("commit", "--quiet", "-m", message, cwd=work)
    return (await git("rev-parse", "HEAD", cwd=work)).stdout.strip()


# -- git over HTTP -------------------------------------------------------------------------------------


async def test_git_clone_commit_and_push_a_new_branch(server: GitHttpServer, tmp_path: Path) -> None:
    main = server.ref("acme/widgets", "main")
    assert main is not None and server.ref("acme/widgets", "refs/heads/main") == main
    assert server.ref("acme/widgets", "refs/heads/nope") is None

    work = await clone(server, tmp_path)
    assert (work / "src" / "app.py").read_text() == "print('hi')\n"
    head = await commit_file(work, "notes.txt", "task output\n", "Task: add notes")
    pushed = await git("push", "origin", "HEAD:refs/heads/aicode/task-1", cwd=work)

    assert "[new branch]" in pushed.stderr
    assert server.ref("acme/widgets", "aicode/task-1") == head
    assert server.branches("acme/widgets") == {"main": main, "aicode/task-1": head}
    assert server.read_file("acme/widgets", "aicode/task-1", "notes.txt") == "task output\n"
    assert server.log("acme/widgets", "aicode/task-1") == ["Task: add notes", "Initial commit"]
    pushes = [r for r in server.requests if r.method == "POST" and r.service == "git-receive-pack"]
    assert [(r.path, r.user, r.status) for r in pushes] == [("/acme/widgets.git/git-receive-pack", USER, 200)]
    # git asks without credentials first and answers the 401 with them, as against GitHub.
    first = server.requests[0]
    assert (first.method, first.path, first.service, first.user, first.status) == (
        "GET", "/acme/widgets.git/info/refs", "git-upload-pack", None, 401)


async def test_git_refuses_missing_or_wrong_credentials(server: GitHttpServer, tmp_path: Path) -> None:
    anonymous = await git("ls-remote", server.repo_url("acme/widgets"), check=False)
    assert anonymous.returncode != 0
    assert "terminal prompts disabled" in anonymous.stderr or "Authentication failed" in anonymous.stderr
    wrong = await git("ls-remote", f"http://{USER}:wrong@{server.host}:{server.port}/acme/widgets.git", check=False)
    assert wrong.returncode != 0 and "Authentication failed" in wrong.stderr
    assert {r.status for r in server.requests} == {401}
    assert all(r.user is None for r in server.requests)

    async with httpx.AsyncClient() as client:
        answer = await client.get(f"{server.repo_url('acme/widgets')}/info/refs",
                                  params={"service": "git-upload-pack"})
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == 'Basic realm="git"'


async def test_git_anonymous_read_lets_fetches_through_but_not_pushes(tmp_path: Path) -> None:
    async with GitHttpServer(tmp_path / "served", username=USER, token=TOKEN, anonymous_read=True) as server:
        server.create_repo("public", {"a.txt": "a\n"}, branch="trunk")
        work = tmp_path / "clone"
        await git("clone", "--quiet", server.repo_url("public"), str(work))
        assert (work / "a.txt").read_text() == "a\n"
        await commit_file(work, "b.txt", "b\n", "b")
        refused = await git("push", "origin", "HEAD:refs/heads/feature", cwd=work, check=False)
        assert refused.returncode != 0
        assert server.ref("public", "feature") is None
        assert all(r.user is None for r in server.requests)
        assert [r.status for r in server.requests if r.service == "git-receive-pack"] == [401]


async def test_git_protected_branch_is_refused_like_github(server: GitHttpServer, tmp_path: Path) -> None:
    server.protect("acme/widgets", "main")
    before = server.ref("acme/widgets", "main")
    work = await clone(server, tmp_path)
    head = await commit_file(work, "x.txt", "x\n", "x")

    refused = await git("push", "origin", "HEAD:main", cwd=work, check=False)
    assert refused.returncode != 0
    assert f"! [remote rejected] HEAD -> main ({PROTECTED_REASON})" in refused.stderr
    assert "remote: error: GH006: Protected branch update failed for refs/heads/main." in refused.stderr
    assert server.ref("acme/widgets", "main") == before
    deleted = await git("push", "origin", ":main", cwd=work, check=False)
    assert deleted.returncode != 0 and PROTECTED_REASON in deleted.stderr

    # Only that branch: one whose name merely starts with it is not protected.
    await git("push", "origin", "HEAD:refs/heads/main-2", cwd=work)
    assert server.ref("acme/widgets", "main-2") == head
    server.unprotect("acme/widgets", "main")
    await git("push", "origin", "HEAD:main", cwd=work)
    assert server.ref("acme/widgets", "main") == head


async def test_git_commit_to_moves_a_branch_under_a_clone(server: GitHttpServer, tmp_path: Path) -> None:
    work = await clone(server, tmp_path)
    await git("push", "origin", "HEAD:refs/heads/aicode/task-2", cwd=work)
    pushed = server.ref("acme/widgets", "aicode/task-2")
    await commit_file(work, "mine.txt", "mine\n", "mine")

    theirs = server.commit_to("acme/widgets", "aicode/task-2", {"theirs.txt": "theirs\n", "README.md": None},
                              "someone else")
    assert server.ref("acme/widgets", "aicode/task-2") == theirs
    assert server.read_file("acme/widgets", theirs, "theirs.txt") == "theirs\n"
    assert server.read_file("acme/widgets", theirs, "README.md") is None
    assert server.read_file("acme/widgets", theirs, "src/app.py") == "print('hi')\n"
    assert server.is_ancestor("acme/widgets", str(pushed), theirs)

    plain = await git("push", "origin", "HEAD:refs/heads/aicode/task-2", cwd=work, check=False)
    assert plain.returncode != 0 and "fetch first" in plain.stderr
    lease = await git("push", f"--force-with-lease=refs/heads/aicode/task-2:{pushed}", "origin",
                      "HEAD:refs/heads/aicode/task-2", cwd=work, check=False)
    assert lease.returncode != 0 and "stale info" in lease.stderr
    assert server.ref("acme/widgets", "aicode/task-2") == theirs

    fresh = server.commit_to("acme/widgets", "brand-new", {"n.txt": "n\n"}, "from main")
    assert server.log("acme/widgets", fresh) == ["from main", "Initial commit"]


async def test_git_large_push_and_gzipped_fetch(server: GitHttpServer, tmp_path: Path) -> None:
    work = await clone(server, tmp_path)
    big = os.urandom(3 * 1024 * 1024).hex()  # more than git's 1 MiB post buffer: a chunked request body
    head = await commit_file(work, "big.txt", big, "big")
    await git("push", "origin", "HEAD:refs/heads/big", cwd=work)
    assert server.ref("acme/widgets", "big") == head
    assert server.read_file("acme/widgets", "big", "big.txt") == big

    for index in range(40):  # many local commits: the fetch negotiation sends > 1 KiB of haves, gzipped
        await commit_file(work, f"n/{index}.txt", f"{index}\n", f"local {index}")
    moved = server.commit_to("acme/widgets", "main", {"upstream.txt": "u\n"}, "upstream")
    await git("fetch", "origin", cwd=work)
    assert (await git("rev-parse", "origin/main", cwd=work)).stdout.strip() == moved
    assert any(r.encoding == "gzip" and r.status == 200 for r in server.requests)


async def test_git_read_only_token_cannot_push(server: GitHttpServer, tmp_path: Path) -> None:
    server.read_only = True
    work = await clone(server, tmp_path)
    await commit_file(work, "x.txt", "x\n", "x")
    refused = await git("push", "origin", "HEAD:refs/heads/x", cwd=work, check=False)
    assert refused.returncode != 0 and "403" in refused.stderr
    assert server.ref("acme/widgets", "x") is None


# -- GitHub --------------------------------------------------------------------------------------------


async def test_github_refuses_other_tokens(github: FakeGitHub) -> None:
    async with httpx.AsyncClient(base_url=github.url) as client:
        missing = await client.get("/user")
        wrong = await client.get("/user", headers={"Authorization": "Bearer nope"})
        legacy = await client.get("/user", headers={"Authorization": "token gh-token"})
        bearer = await client.get("/user", headers=GH)
    assert missing.status_code == 401 and missing.json()["message"] == "Requires authentication"
    assert wrong.status_code == 401
    assert wrong.json()["message"] == "Bad credentials" and "documentation_url" in wrong.json()
    assert legacy.status_code == bearer.status_code == 200
    assert bearer.json()["login"] == "aicode-bot"
    assert [r.path for r in github.requests] == ["/user"] * 4
    assert github.requests[3].headers["authorization"] == "Bearer gh-token"


async def test_github_pull_request_lifecycle(github: FakeGitHub) -> None:
    issue = github.add_issue("acme/widgets", "Fix the widget", "It is broken")
    async with httpx.AsyncClient(base_url=github.url, headers=GH) as client:
        created = await client.post("/repos/acme/widgets/pulls", json={
            "title": "Fix the widget", "head": "aicode/task-1", "base": "main", "body": "Closes #1", "draft": True})
        again = await client.post("/repos/acme/widgets/pulls", json={
            "title": "Again", "head": "acme:aicode/task-1", "base": "main"})
        other = await client.post("/repos/acme/widgets/pulls", json={
            "title": "Other", "head": "aicode/task-2", "base": "main"})
        by_head = await client.get("/repos/acme/widgets/pulls",
                                   params={"head": "acme:aicode/task-1", "state": "open"})
        bare_head = await client.get("/repos/acme/widgets/pulls", params={"head": "aicode/task-1"})
        single = await client.get("/repos/acme/widgets/pulls/2")

    assert created.status_code == 201, created.text
    pull = created.json()
    assert issue == 1 and pull["number"] == 2  # issues and pull requests share the numbers
    assert pull["html_url"] == "https://github.example/acme/widgets/pull/2"
    assert pull["url"] == f"{github.url}/repos/acme/widgets/pulls/2"
    assert (pull["state"], pull["draft"], pull["title"], pull["body"]) == ("open", True, "Fix the widget", "Closes #1")
    assert pull["head"]["ref"] == "aicode/task-1" and pull["head"]["label"] == "acme:aicode/task-1"
    assert len(pull["head"]["sha"]) == 40 and pull["base"]["ref"] == "main"
    assert pull["user"]["login"] == "aicode-bot" and isinstance(pull["id"], int)

    assert again.status_code == 422
    assert again.json()["message"] == "Validation Failed"
    assert again.json()["errors"] == [{"resource": "PullRequest", "code": "custom",
                                       "message": "A pull request already exists for acme:aicode/task-1."}]
    assert "documentation_url" in again.json()
    assert other.status_code == 201 and other.json()["number"] == 3

    assert [p["number"] for p in by_head.json()] == [2]
    assert "mergeable" not in by_head.json()[0] and "mergeable" in single.json()
    assert sorted(p["number"] for p in bare_head.json()) == [2, 3]  # a head without owner: filters nothing
    assert github.pulls[("acme/widgets", 2)]["title"] == "Fix the widget"
    assert github.requests_to("POST", "/pulls")[0].json["head"] == "aicode/task-1"

    github.set_pull_state("acme/widgets", 2, "closed")
    async with httpx.AsyncClient(base_url=github.url, headers=GH) as client:
        reopened = await client.post("/repos/acme/widgets/pulls", json={
            "title": "Retry", "head": "aicode/task-1", "base": "main"})
        closed = await client.get("/repos/acme/widgets/pulls", params={"head": "acme:aicode/task-1",
                                                                       "state": "closed"})
    assert reopened.status_code == 201 and reopened.json()["number"] == 4
    assert [p["number"] for p in closed.json()] == [2]


async def test_github_refusals(github: FakeGitHub) -> None:
    async with httpx.AsyncClient(base_url=github.url, headers=GH) as client:
        unknown = await client.post("/repos/acme/nope/pulls", json={"title": "t", "head": "x", "base": "main"})
        missing = await client.post("/repos/acme/widgets/pulls", json={"title": "t"})
        github.forbid_pulls = True
        forbidden = await client.post("/repos/acme/widgets/pulls", json={"title": "t", "head": "x", "base": "main"})
        github.rate_limited = True
        limited = await client.get("/user")
        no_agent = await client.get("/user", headers={"User-Agent": ""})
    assert unknown.status_code == 404 and unknown.json()["message"] == "Not Found"
    assert missing.status_code == 422 and '"head", "base"' in missing.json()["message"]
    assert forbidden.status_code == 403
    assert forbidden.json()["message"] == "Resource not accessible by personal access token"
    assert limited.status_code == 403 and limited.headers["x-ratelimit-remaining"] == "0"
    assert no_agent.status_code == 403
    assert github.pulls == {}


async def test_github_with_a_git_server_checks_the_head(github: FakeGitHub, server: GitHttpServer) -> None:
    github.add_repo("acme/widgets", git=server)
    main = server.ref("acme/widgets", "main")
    async with httpx.AsyncClient(base_url=github.url, headers=GH) as client:
        repo = await client.get("/repos/ACME/Widgets")  # GitHub ignores case in names
        not_pushed = await client.post("/repos/acme/widgets/pulls", json={"title": "t", "head": "task", "base": "main"})
        task = server.commit_to("acme/widgets", "task", {"t.txt": "t\n"}, "task")
        opened = await client.post("/repos/acme/widgets/pulls", json={"title": "t", "head": "task", "base": "main"})
        server.set_ref("acme/widgets", "refs/heads/level", str(main))
        nothing = await client.post("/repos/acme/widgets/pulls", json={"title": "t", "head": "level", "base": "main"})
    assert repo.status_code == 200 and repo.json()["full_name"] == "acme/widgets"
    assert repo.json()["default_branch"] == "main"
    assert repo.json()["clone_url"] == server.repo_url("acme/widgets")
    assert not_pushed.status_code == 422
    assert not_pushed.json()["errors"] == [{"resource": "PullRequest", "field": "head", "code": "invalid"}]
    assert opened.status_code == 201
    assert opened.json()["head"]["sha"] == task and opened.json()["base"]["sha"] == main
    assert nothing.status_code == 422
    assert nothing.json()["errors"][0]["message"] == "No commits between main and level"


async def test_github_comments(github: FakeGitHub) -> None:
    number = github.add_issue("acme/widgets", "Crash on start", "Steps: ...")
    async with httpx.AsyncClient(base_url=github.url, headers=GH) as client:
        posted = await client.post(f"/repos/acme/widgets/issues/{number}/comments", json={"body": "On it."})
        unknown = await client.post("/repos/acme/widgets/issues/99/comments", json={"body": "?"})
        empty = await client.post(f"/repos/acme/widgets/issues/{number}/comments", json={})
        listed = await client.get(f"/repos/acme/widgets/issues/{number}/comments")
        issue = await client.get(f"/repos/acme/widgets/issues/{number}")
    assert posted.status_code == 201
    comment = posted.json()
    assert comment["body"] == "On it." and comment["user"]["login"] == "aicode-bot"
    assert comment["html_url"] == f"https://github.example/acme/widgets/issues/1#issuecomment-{comment['id']}"
    assert unknown.status_code == 404 and empty.status_code == 422
    assert [c["body"] for c in github.comments[("acme/widgets", number)]] == ["On it."]
    assert [c["id"] for c in listed.json()] == [comment["id"]]
    assert issue.json()["comments"] == 1 and "pull_request" not in issue.json()


async def test_github_failure_switches(github: FakeGitHub) -> None:
    github.fail_with, github.fail_times = 502, 2
    async with httpx.AsyncClient(base_url=github.url, headers=GH) as client:
        statuses = [(await client.get("/user")).status_code for _ in range(3)]
        github.hang = True
        with pytest.raises(httpx.ReadTimeout):
            await client.get("/user", timeout=0.3)
        github.hang = False
        after = await client.get("/user")
    assert statuses == [502, 502, 200] and after.status_code == 200


async def test_fakes_answer_while_the_test_loop_is_blocked(github: FakeGitHub) -> None:
    # What Litestar's AsyncTestClient does to the test's loop while the app handles a request.
    with httpx.Client(base_url=github.url, headers=GH, timeout=5) as client:
        assert client.get("/user").status_code == 200


def test_github_comment_delivery_is_signed_like_github() -> None:
    raw, headers = github_comment_delivery("hook-secret", repo="acme/widgets", number=7, title="Add a flag",
                                           body="Please", comment="@aicode do it", login="ada", is_pull_request=True,
                                           delivery_id="d-1")
    expected = "sha256=" + hmac.new(b"hook-secret", raw, hashlib.sha256).hexdigest()
    assert headers["X-Hub-Signature-256"] == expected
    assert headers["X-GitHub-Event"] == "issue_comment" and headers["X-GitHub-Delivery"] == "d-1"
    assert headers["Content-Type"] == "application/json" and headers["User-Agent"].startswith("GitHub-Hookshot/")
    payload = json.loads(raw)
    assert payload["action"] == "created"
    assert payload["issue"]["number"] == 7 and payload["issue"]["title"] == "Add a flag"
    assert payload["issue"]["pull_request"]["html_url"] == "https://github.example/acme/widgets/pull/7"
    assert payload["comment"]["body"] == "@aicode do it" and payload["comment"]["user"]["login"] == "ada"
    assert payload["comment"]["user"]["type"] == "User"
    assert payload["repository"]["full_name"] == "acme/widgets" and payload["repository"]["owner"]["login"] == "acme"
    assert payload["sender"]["login"] == "ada"
    plain, plain_headers = github_comment_delivery("s", repo="a/b", number=1, title="t", body="b", comment="c",
                                                   login="x")
    assert "pull_request" not in json.loads(plain)["issue"]
    assert plain_headers["X-GitHub-Delivery"] != headers["X-GitHub-Delivery"]


# -- GitLab --------------------------------------------------------------------------------------------


async def test_gitlab_refuses_other_tokens(gitlab: FakeGitLab) -> None:
    async with httpx.AsyncClient(base_url=gitlab.api_url) as client:
        missing = await client.get("/user")
        wrong = await client.get("/user", headers={"PRIVATE-TOKEN": "nope"})
        bearer = await client.get("/user", headers={"Authorization": "Bearer gl-token"})
        private = await client.get("/user", headers=GL)
    assert missing.status_code == wrong.status_code == 401
    assert wrong.json() == {"message": "401 Unauthorized"}
    assert bearer.status_code == private.status_code == 200 and private.json()["username"] == "aicode-bot"


async def test_gitlab_merge_request_lifecycle(gitlab: FakeGitLab) -> None:
    project_id = gitlab.project_id("acme/tools/widgets")
    encoded = "/projects/acme%2Ftools%2Fwidgets"
    async with httpx.AsyncClient(base_url=gitlab.api_url, headers=GL) as client:
        created = await client.post(f"{encoded}/merge_requests", json={
            "source_branch": "aicode/task-1", "target_branch": "main", "title": "Draft: Fix the widget",
            "description": "Closes #1"})
        flagged = await client.post(f"/projects/{project_id}/merge_requests", json={
            "source_branch": "aicode/task-2", "target_branch": "main", "title": "Plain title", "draft": True})
        again = await client.post(f"{encoded}/merge_requests", json={
            "source_branch": "aicode/task-1", "target_branch": "main", "title": "Again"})
        listed = await client.get(f"{encoded}/merge_requests",
                                  params={"source_branch": "aicode/task-1", "state": "opened"})
        unencoded = await client.get("/projects/acme/tools/widgets/merge_requests")
        unknown = await client.post("/projects/acme%2Fnope/merge_requests", json={
            "source_branch": "a", "target_branch": "main", "title": "t"})
        missing = await client.post(f"{encoded}/merge_requests", json={"source_branch": "a"})
        project = await client.get(f"/projects/{project_id}")

    assert created.status_code == 201, created.text
    mr = created.json()
    assert (mr["iid"], mr["project_id"], mr["state"], mr["draft"]) == (1, project_id, "opened", True)
    assert mr["web_url"] == "https://gitlab.example/acme/tools/widgets/-/merge_requests/1"
    assert (mr["source_branch"], mr["target_branch"], mr["description"]) == ("aicode/task-1", "main", "Closes #1")
    assert isinstance(mr["id"], int) and mr["id"] != mr["iid"]
    assert flagged.status_code == 201 and flagged.json()["draft"] is False  # GitLab ignores a `draft` attribute
    assert again.status_code == 409
    assert again.json() == {"message": ["Another open merge request already exists for this source branch: !1"]}
    assert [m["iid"] for m in listed.json()] == [1]
    assert unencoded.status_code == 404
    assert unknown.status_code == 404 and unknown.json() == {"message": "404 Project Not Found"}
    assert missing.status_code == 400 and "target_branch is missing" in missing.json()["error"]
    assert project.json()["path_with_namespace"] == "acme/tools/widgets"
    assert gitlab.merge_requests[("acme/tools/widgets", 2)]["title"] == "Plain title"
    assert gitlab.requests_to("POST", "/merge_requests")[0].path == "/api/v4" + encoded + "/merge_requests"

    gitlab.forbid_merge_requests = True
    async with httpx.AsyncClient(base_url=gitlab.api_url, headers=GL) as client:
        forbidden = await client.post(f"{encoded}/merge_requests", json={
            "source_branch": "b", "target_branch": "main", "title": "t"})
    assert forbidden.status_code == 403 and forbidden.json() == {"message": "403 Forbidden"}


async def test_gitlab_notes(gitlab: FakeGitLab) -> None:
    iid = gitlab.add_issue("acme/tools/widgets", "Crash", "Steps")
    encoded = "/projects/acme%2Ftools%2Fwidgets"
    async with httpx.AsyncClient(base_url=gitlab.api_url, headers=GL) as client:
        await client.post(f"{encoded}/merge_requests", json={
            "source_branch": "aicode/task-1", "target_branch": "main", "title": "Fix"})
        on_issue = await client.post(f"{encoded}/issues/{iid}/notes", json={"body": "On it."})
        on_mr = await client.post(f"{encoded}/merge_requests/1/notes", json={"body": "Pushed."})
        unknown = await client.post(f"{encoded}/issues/42/notes", json={"body": "?"})
        empty = await client.post(f"{encoded}/issues/{iid}/notes", json={})
    assert on_issue.status_code == on_mr.status_code == 201
    note = on_issue.json()
    assert note["body"] == "On it." and note["author"]["username"] == "aicode-bot"
    assert (note["noteable_type"], note["noteable_iid"]) == ("Issue", iid)
    assert (on_mr.json()["noteable_type"], on_mr.json()["noteable_iid"]) == ("MergeRequest", 1)
    assert unknown.status_code == 404 and empty.status_code == 400
    assert [n["body"] for n in gitlab.notes[("acme/tools/widgets", "issues", iid)]] == ["On it."]
    assert [n["body"] for n in gitlab.notes[("acme/tools/widgets", "merge_requests", 1)]] == ["Pushed."]


async def test_gitlab_failure_switches(gitlab: FakeGitLab) -> None:
    gitlab.fail_with = 500
    async with httpx.AsyncClient(base_url=gitlab.api_url, headers=GL) as client:
        failed = await client.get("/user")
        gitlab.fail_with = None
        gitlab.rate_limited = True
        limited = await client.get("/user")
    assert failed.status_code == 500
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "60"


def test_gitlab_note_delivery_looks_like_gitlab() -> None:
    raw, headers = gitlab_note_delivery("hook-token", project="acme/widgets", iid=3, title="Add a flag",
                                        description="Please", note="@aicode do it", username="ada",
                                        on="MergeRequest", event_uuid="e-1", project_id=42)
    assert headers["X-Gitlab-Event"] == "Note Hook" and headers["X-Gitlab-Token"] == "hook-token"
    assert headers["X-Gitlab-Event-UUID"] == "e-1" and headers["Content-Type"] == "application/json"
    payload = json.loads(raw)
    assert (payload["object_kind"], payload["event_type"]) == ("note", "note")
    assert payload["user"]["username"] == "ada" and payload["user"]["name"]
    assert payload["project"]["id"] == 42 and payload["project"]["path_with_namespace"] == "acme/widgets"
    assert payload["project"]["web_url"] == "https://gitlab.example/acme/widgets"
    attributes = payload["object_attributes"]
    assert attributes["note"] == "@aicode do it" and attributes["noteable_type"] == "MergeRequest"
    assert attributes["url"].startswith("https://gitlab.example/acme/widgets/-/merge_requests/3#note_")
    assert payload["merge_request"]["iid"] == 3 and payload["merge_request"]["source_branch"]
    assert "issue" not in payload
    on_issue = json.loads(gitlab_note_delivery("t", project="a/b", iid=1, title="t", description="d", note="n",
                                               username="u")[0])
    assert on_issue["issue"]["iid"] == 1 and on_issue["issue"]["description"] == "d"
    assert "merge_request" not in on_issue
