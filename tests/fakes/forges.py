"""Fake GitHub (REST v3) and GitLab (API v4) servers, and the webhook deliveries they send, for forge tests.

The fakes answer the few endpoints aicode's forge round trip uses (open a pull/merge request, find the open
one for a branch, comment on an issue or a pull/merge request, who am I) with the status codes, JSON field
names and error bodies of the real APIs, so a client that works against them has met the real shapes:
GitHub's `422 Validation Failed` for a duplicate pull request, GitLab's `409` with a *list* of messages, a
GitLab project addressed by its URL-encoded path (`group%2Fname`), draft merge requests that GitLab only
knows by their title (its create endpoint has no `draft` attribute: one sent is ignored, as GitLab does).

    async with FakeGitHub(token="gh-token") as github:
        github.add_repo("acme/widgets", default_branch="main", git=git_server)
        ...  # point the forge's api_url at github.url
        assert github.pulls[("acme/widgets", 1)]["head"]["ref"] == "aicode/task-1"

State is in plain attributes (`pulls`, `issues`, `comments`; `merge_requests`, `issues`, `notes`) holding
the JSON objects as served; every request is in `requests` (method, raw path, query, headers, JSON body),
refused ones included. `add_repo`/`add_project` may link a `GitHttpServer` repository: pull/merge
requests then carry the real head `sha`, and GitHub refuses a head branch that was not pushed (422, like
the real one) or that has no commits over the base ("No commits between ..."). Without a link a head is
taken on trust and its sha is made up.

Switches for error paths: `forbid_pulls`/`forbid_comments` (GitHub 403), `forbid_merge_requests`/
`forbid_notes` (GitLab 403), `rate_limited` (GitHub 403 with `x-ratelimit-remaining: 0`, GitLab 429), and
from `ThreadedServer`: `fail_with = 502` (`fail_times = N`), `hang = True`. Both fakes run in a thread of
their own (see `threaded_server`), so the app may call them while a test client request is in flight.

`github_comment_delivery()` and `gitlab_note_delivery()` build the raw body and headers of the
`issue_comment` / `Note Hook` webhook deliveries, signed (GitHub) or carrying the token (GitLab).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from aiohttp import web
from multidict import CIMultiDict

from tests.fakes.threaded_server import ThreadedServer

if TYPE_CHECKING:
    from tests.fakes.git_http import GitHttpServer

__all__ = [
    "FakeGitHub",
    "FakeGitLab",
    "ForgeRequest",
    "github_comment_delivery",
    "gitlab_note_delivery",
]

GITHUB_HTML = "https://github.example"
GITHUB_API = "https://api.github.com"
GITLAB_WEB = "https://gitlab.example"
_GITHUB_DOCS = "https://docs.github.com/rest"
_GITLAB_DRAFT = re.compile(r"^\s*(\[draft\]|\(draft\)|draft:)", re.IGNORECASE)
_ids = itertools.count(1_000_001)  # GitHub/GitLab global ids: unique across fakes, never small numbers


@dataclass(frozen=True)
class ForgeRequest:
    """One request a fake received, before any check (refused requests are recorded too)."""

    method: str
    path: str  # the raw path as sent, without the query (GitLab ids stay encoded: /api/v4/projects/a%2Fb/...)
    query: dict[str, str]
    headers: CIMultiDict[str]  # case-insensitive: headers["authorization"]
    json: Any  # the parsed JSON (or form) body; None without one, the text when it isn't JSON


Route = tuple[str, re.Pattern[str], Callable[..., Awaitable[web.StreamResponse]]]


def _now(style: str = "github") -> str:
    moment = datetime.now(UTC)
    if style == "gitlab":
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    if style == "hook":  # GitLab webhook payloads
        return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


async def _body(request: web.Request) -> Any:
    """The parsed JSON (or form) body; None without one, the text when it is neither (aiohttp caches the bytes)."""
    raw = await request.read()
    if not raw:
        return None
    if request.content_type == "application/x-www-form-urlencoded":
        return dict(await request.post())
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def _made_up_sha(*parts: str) -> str:
    return hashlib.sha1("\0".join(parts).encode()).hexdigest()


class _FakeForge(ThreadedServer):
    """What both fakes share: the token, request recording, JSON bodies and a regex router over raw paths."""

    def __init__(self, token: str, host: str, port: int) -> None:
        super().__init__(host, port)
        self.token = token
        self.rate_limited = False
        self.requests: list[ForgeRequest] = []
        self._routes: list[Route] = []

    def requests_to(self, method: str, path_suffix: str = "") -> list[ForgeRequest]:
        """The recorded requests with this method whose path ends with `path_suffix`."""
        return [r for r in self.requests if r.method == method and r.path.endswith(path_suffix)]

    def _route(self, method: str, pattern: str, handler: Callable[..., Awaitable[web.StreamResponse]]) -> None:
        self._routes.append((method, re.compile(pattern), handler))

    def _application(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        return app

    async def _observe(self, request: web.Request) -> None:
        self.requests.append(ForgeRequest(request.method, request.raw_path.split("?", 1)[0], dict(request.query),
                                          CIMultiDict(request.headers), await _body(request)))

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        refusal = self._auth_refusal(request)
        if refusal is not None:
            return refusal
        if self.rate_limited:
            return self._rate_limit_answer()
        path = request.raw_path.split("?", 1)[0]
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(path)
            if match and method == request.method:
                return await handler(request, *match.groups())
        return self._no_route()

    def _auth_refusal(self, request: web.Request) -> web.StreamResponse | None:
        raise NotImplementedError

    def _rate_limit_answer(self) -> web.StreamResponse:
        raise NotImplementedError

    def _no_route(self) -> web.StreamResponse:
        raise NotImplementedError

    @staticmethod
    def _bearer(request: web.Request, *schemes: str) -> str | None:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        return value.strip() if scheme.lower() in schemes else None

    def _token_matches(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())


# -- GitHub ----------------------------------------------------------------------------------------------


@dataclass
class _GitHubRepo:
    full_name: str
    id: int
    default_branch: str
    git: GitHttpServer | None
    git_name: str


class FakeGitHub(_FakeForge):
    """GitHub's REST API (what https://api.github.com answers) for the repositories added with `add_repo`."""

    thread_name = "fake-github"

    def __init__(self, token: str = "gh-token", *, bot_login: str = "aicode-bot", html_base: str = GITHUB_HTML,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(token, host, port)
        self.bot_login = bot_login
        self.bot_id = next(_ids)
        self.html_base = html_base.rstrip("/")
        self.forbid_pulls = False  # POST .../pulls -> 403 (a token without pull-request write access)
        self.forbid_comments = False  # POST .../issues/N/comments -> 403
        self.repos: dict[str, _GitHubRepo] = {}  # by lower-cased full name (GitHub ignores case)
        self.pulls: dict[tuple[str, int], dict[str, Any]] = {}  # (full name, number) -> the pull request JSON
        self.issues: dict[tuple[str, int], dict[str, Any]] = {}  # (full name, number) -> the issue JSON
        self.comments: defaultdict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
        self._numbers: dict[str, itertools.count[int]] = {}
        repo = r"/repos/([^/]+)/([^/]+)"
        self._route("GET", r"/user", self._user)
        self._route("GET", repo, self._get_repo)
        self._route("POST", repo + r"/pulls", self._create_pull)
        self._route("GET", repo + r"/pulls", self._list_pulls)
        self._route("GET", repo + r"/pulls/(\d+)", self._get_pull)
        self._route("GET", repo + r"/issues/(\d+)", self._get_issue)
        self._route("POST", repo + r"/issues/(\d+)/comments", self._create_comment)
        self._route("GET", repo + r"/issues/(\d+)/comments", self._list_comments)

    # -- set-up and state --------------------------------------------------------------
    def add_repo(self, full_name: str, default_branch: str = "main", *, git: GitHttpServer | None = None,
                 git_name: str | None = None) -> None:
        """Serve `owner/name`; with `git`, its branches are those of `git_name` (default: full_name) there."""
        self.repos[full_name.lower()] = _GitHubRepo(full_name, next(_ids), default_branch, git,
                                                    git_name or full_name)
        self._numbers[full_name] = itertools.count(1)

    def add_issue(self, repo: str, title: str, body: str = "", *, login: str = "octocat") -> int:
        """Open an issue in `repo` (written by `login`) and return its number (shared with pull requests)."""
        known = self._repo(repo)
        if known is None:
            raise KeyError(f"no repository {repo}: add_repo() it first")
        number = next(self._numbers[known.full_name])
        self.issues[(known.full_name, number)] = self._issue_json(known, number, title, body, login, pull=False)
        return number

    def set_pull_state(self, repo: str, number: int, state: str = "closed", *, merged: bool = False) -> None:
        """Close (or merge, or reopen) a pull request, as someone on GitHub would."""
        pull = self.pulls[(repo, number)]
        stamp = _now()
        pull.update(state=state, updated_at=stamp, closed_at=None if state == "open" else stamp,
                    merged=merged, merged_at=stamp if merged else None)
        self.issues[(repo, number)].update(state=state, closed_at=pull["closed_at"])

    def open_pulls(self, repo: str) -> list[dict[str, Any]]:
        return [pull for (name, _), pull in self.pulls.items() if name == repo and pull["state"] == "open"]

    @property
    def api_url(self) -> str:
        """What https://api.github.com is for this fake (the same as `url`)."""
        return self.url

    def _repo(self, full_name: str) -> _GitHubRepo | None:
        return self.repos.get(full_name.lower())

    # -- answers ------------------------------------------------------------------------
    def _error(self, status: int, message: str, docs: str = _GITHUB_DOCS, **extra: Any) -> web.Response:
        return web.json_response({"message": message, **extra, "documentation_url": docs, "status": str(status)},
                                 status=status, headers=self._headers())

    def _ok(self, data: Any, status: int = 200) -> web.Response:
        return web.json_response(data, status=status, headers=self._headers())

    def _headers(self) -> dict[str, str]:
        used = len(self.requests)
        return {"X-GitHub-Request-Id": uuid.uuid4().hex[:20].upper(), "X-GitHub-Media-Type": "github.v3; format=json",
                "X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": str(max(0, 5000 - used)),
                "X-RateLimit-Used": str(used), "X-RateLimit-Reset": str(int(time.time()) + 3600),
                "X-RateLimit-Resource": "core"}

    def _failure(self, request: web.Request, status: int) -> web.StreamResponse:
        return web.json_response({"message": "Server Error"}, status=status)

    def _auth_refusal(self, request: web.Request) -> web.StreamResponse | None:
        if not request.headers.get("User-Agent"):  # GitHub refuses requests without one
            return web.Response(status=403, text="Request forbidden by administrative rules. Please make sure your "
                                                 "request has a User-Agent header (https://docs.github.com/en/rest/"
                                                 "overview/resources-in-the-rest-api#user-agent-required). Check "
                                                 "https://developer.github.com for other possible causes.\n")
        given = self._bearer(request, "bearer", "token")
        if given is None and "Authorization" not in request.headers:
            return self._error(401, "Requires authentication")
        if not self._token_matches(given):
            return self._error(401, "Bad credentials")
        return None

    def _rate_limit_answer(self) -> web.StreamResponse:
        return web.json_response(
            {"message": f"API rate limit exceeded for user ID {self.bot_id}.",
             "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
             "status": "403"},
            status=403, headers={**self._headers(), "X-RateLimit-Remaining": "0", "X-RateLimit-Used": "5000"})

    def _no_route(self) -> web.StreamResponse:
        return self._error(404, "Not Found")

    def _user_json(self, login: str, type_: str = "User") -> dict[str, Any]:
        user_id = self.bot_id if login == self.bot_login else int(_made_up_sha(login)[:7], 16)
        return {"login": login, "id": user_id, "node_id": f"U_fake{user_id}",
                "avatar_url": f"https://avatars.githubusercontent.example/u/{user_id}",
                "url": f"{self.url}/users/{login}", "html_url": f"{self.html_base}/{login}", "type": type_,
                "site_admin": False}

    def _repo_json(self, repo: _GitHubRepo) -> dict[str, Any]:
        owner, name = repo.full_name.split("/", 1)
        api = f"{self.url}/repos/{repo.full_name}"
        return {"id": repo.id, "node_id": f"R_fake{repo.id}", "name": name, "full_name": repo.full_name,
                "private": True, "owner": {**self._user_json(owner), "type": "Organization"},
                "html_url": f"{self.html_base}/{repo.full_name}", "url": api,
                "pulls_url": api + "/pulls{/number}", "issues_url": api + "/issues{/number}",
                "clone_url": repo.git.repo_url(repo.git_name) if repo.git else f"{self.html_base}/{repo.full_name}.git",
                "default_branch": repo.default_branch, "visibility": "private", "fork": False, "archived": False,
                "disabled": False}

    def _branch_sha(self, repo: _GitHubRepo, branch: str) -> str | None:
        if repo.git is None:
            return _made_up_sha(repo.full_name, branch)
        return repo.git.ref(repo.git_name, f"refs/heads/{branch}")

    def _issue_json(self, repo: _GitHubRepo, number: int, title: str, body: str | None, login: str, *,
                    pull: bool) -> dict[str, Any]:
        api = f"{self.url}/repos/{repo.full_name}"
        html = f"{self.html_base}/{repo.full_name}/{'pull' if pull else 'issues'}/{number}"
        stamp = _now()
        issue = {
            "url": f"{api}/issues/{number}", "repository_url": api, "comments_url": f"{api}/issues/{number}/comments",
            "html_url": html, "id": next(_ids), "node_id": f"I_fake{number}", "number": number, "title": title,
            "user": self._user_json(login), "labels": [], "state": "open", "locked": False, "assignee": None,
            "assignees": [], "milestone": None, "comments": 0, "created_at": stamp, "updated_at": stamp,
            "closed_at": None, "author_association": "MEMBER", "body": body,
        }
        if pull:
            issue["pull_request"] = {"url": f"{api}/pulls/{number}", "html_url": html, "diff_url": html + ".diff",
                                     "patch_url": html + ".patch", "merged_at": None}
        return issue

    # -- handlers ---------------------------------------------------------------------
    async def _user(self, request: web.Request) -> web.StreamResponse:
        return self._ok({**self._user_json(self.bot_login), "name": self.bot_login, "email": None})

    async def _get_repo(self, request: web.Request, owner: str, name: str) -> web.StreamResponse:
        repo = self._repo(f"{owner}/{name}")
        return self._ok(self._repo_json(repo)) if repo else self._error(404, "Not Found")

    async def _create_pull(self, request: web.Request, owner: str, name: str) -> web.StreamResponse:
        docs = "https://docs.github.com/rest/pulls/pulls#create-a-pull-request"
        repo = self._repo(f"{owner}/{name}")
        if repo is None:
            return self._error(404, "Not Found", docs)
        if self.forbid_pulls:
            return self._error(403, "Resource not accessible by personal access token", docs)
        data = await _body(request)
        if not isinstance(data, dict):
            return self._error(400, "Problems parsing JSON", docs)
        missing = [key for key in ("head", "base") if not data.get(key)]
        if missing:
            said = ", ".join(f'"{key}"' for key in missing)
            return self._error(422, f"Invalid request.\n\n{said} {'weren' if len(missing) > 1 else 'wasn'}'t "
                                    "supplied.", docs)
        if not data.get("title") and not data.get("issue"):
            return self._validation_failed([{"resource": "PullRequest", "code": "missing_field", "field": "title"}])
        head_label = str(data["head"])
        head_owner, _, head_ref = head_label.rpartition(":")
        head_owner = head_owner or repo.full_name.split("/")[0]
        head_label = f"{head_owner}:{head_ref}"
        base_ref = str(data["base"])
        head_sha, base_sha = self._branch_sha(repo, head_ref), self._branch_sha(repo, base_ref)
        errors = []
        if base_sha is None:
            errors.append({"resource": "PullRequest", "field": "base", "code": "invalid"})
        if head_sha is None:
            errors.append({"resource": "PullRequest", "field": "head", "code": "invalid"})
        if errors:
            return self._validation_failed(errors)
        for pull in self.open_pulls(repo.full_name):
            if pull["head"]["label"] == head_label and pull["base"]["ref"] == base_ref:
                return self._validation_failed([{"resource": "PullRequest", "code": "custom",
                                                 "message": f"A pull request already exists for {head_label}."}])
        assert head_sha is not None and base_sha is not None
        if repo.git is not None and self._no_commits_between(repo, base_sha, head_sha):
            return self._validation_failed([{"resource": "PullRequest", "code": "custom",
                                             "message": f"No commits between {base_ref} and {head_ref}"}])
        number = next(self._numbers[repo.full_name])
        title, body = str(data.get("title") or ""), data.get("body")
        issue = self._issue_json(repo, number, title, body, self.bot_login, pull=True)
        self.issues[(repo.full_name, number)] = issue
        api = f"{self.url}/repos/{repo.full_name}"
        repo_json, owner_json = self._repo_json(repo), self._user_json(repo.full_name.split("/")[0])
        pull = {
            "url": f"{api}/pulls/{number}", "id": next(_ids), "node_id": f"PR_fake{number}",
            "html_url": issue["html_url"], "diff_url": issue["html_url"] + ".diff",
            "patch_url": issue["html_url"] + ".patch", "issue_url": issue["url"],
            "commits_url": f"{api}/pulls/{number}/commits", "review_comments_url": f"{api}/pulls/{number}/comments",
            "comments_url": issue["comments_url"], "statuses_url": f"{api}/statuses/{head_sha}",
            "number": number, "state": "open", "locked": False, "title": title, "user": issue["user"], "body": body,
            "labels": [], "milestone": None, "active_lock_reason": None, "created_at": issue["created_at"],
            "updated_at": issue["updated_at"], "closed_at": None, "merged_at": None, "merge_commit_sha": None,
            "assignee": None, "assignees": [], "requested_reviewers": [], "requested_teams": [],
            "head": {"label": head_label, "ref": head_ref, "sha": head_sha, "user": self._user_json(head_owner),
                     "repo": repo_json},
            "base": {"label": f"{repo.full_name.split('/')[0]}:{base_ref}", "ref": base_ref, "sha": base_sha,
                     "user": owner_json, "repo": repo_json},
            "author_association": "MEMBER", "auto_merge": None, "draft": bool(data.get("draft", False)),
            "merged": False, "mergeable": None, "rebaseable": None, "mergeable_state": "unknown", "merged_by": None,
            "comments": 0, "review_comments": 0, "maintainer_can_modify": bool(data.get("maintainer_can_modify")),
            "commits": 1, "additions": 0, "deletions": 0, "changed_files": 0,
        }
        self.pulls[(repo.full_name, number)] = pull
        return self._ok(pull, 201)

    def _validation_failed(self, errors: list[dict[str, Any]]) -> web.Response:
        return self._error(422, "Validation Failed", "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
                           errors=errors)

    @staticmethod
    def _no_commits_between(repo: _GitHubRepo, base_sha: str, head_sha: str) -> bool:
        assert repo.git is not None
        return head_sha == base_sha or repo.git.is_ancestor(repo.git_name, head_sha, base_sha)

    async def _list_pulls(self, request: web.Request, owner: str, name: str) -> web.StreamResponse:
        repo = self._repo(f"{owner}/{name}")
        if repo is None:
            return self._error(404, "Not Found")
        state = request.query.get("state", "open")
        head = request.query.get("head")
        base = request.query.get("base")
        found = []
        for (full_name, _), pull in sorted(self.pulls.items(), key=lambda item: -item[0][1]):
            if full_name != repo.full_name or (state != "all" and pull["state"] != state):
                continue
            # GitHub filters by head only in the form owner:branch; a bare branch name filters nothing.
            if head and ":" in head and pull["head"]["label"].lower() != head.lower():
                continue
            if base and pull["base"]["ref"] != base:
                continue
            found.append(_simple_pull(pull))
        return self._ok(found)

    async def _get_pull(self, request: web.Request, owner: str, name: str, number: str) -> web.StreamResponse:
        repo = self._repo(f"{owner}/{name}")
        pull = self.pulls.get((repo.full_name, int(number))) if repo else None
        return self._ok(pull) if pull else self._error(404, "Not Found")

    async def _get_issue(self, request: web.Request, owner: str, name: str, number: str) -> web.StreamResponse:
        repo = self._repo(f"{owner}/{name}")
        issue = self.issues.get((repo.full_name, int(number))) if repo else None
        return self._ok(issue) if issue else self._error(404, "Not Found")

    async def _create_comment(self, request: web.Request, owner: str, name: str, number: str) -> web.StreamResponse:
        docs = "https://docs.github.com/rest/issues/comments#create-an-issue-comment"
        repo = self._repo(f"{owner}/{name}")
        issue = self.issues.get((repo.full_name, int(number))) if repo else None
        if repo is None or issue is None:
            return self._error(404, "Not Found", docs)
        if self.forbid_comments:
            return self._error(403, "Resource not accessible by personal access token", docs)
        data = await _body(request)
        if not isinstance(data, dict) or "body" not in data:
            return self._error(422, 'Invalid request.\n\n"body" wasn\'t supplied.', docs)
        comment_id = next(_ids)
        stamp = _now()
        comment = {
            "url": f"{self.url}/repos/{repo.full_name}/issues/comments/{comment_id}",
            "html_url": f"{issue['html_url']}#issuecomment-{comment_id}", "issue_url": issue["url"],
            "id": comment_id, "node_id": f"IC_fake{comment_id}", "user": self._user_json(self.bot_login),
            "created_at": stamp, "updated_at": stamp, "author_association": "MEMBER", "body": data["body"],
            "performed_via_github_app": None,
        }
        self.comments[(repo.full_name, int(number))].append(comment)
        issue["comments"] += 1
        return self._ok(comment, 201)

    async def _list_comments(self, request: web.Request, owner: str, name: str, number: str) -> web.StreamResponse:
        repo = self._repo(f"{owner}/{name}")
        if repo is None or (repo.full_name, int(number)) not in self.issues:
            return self._error(404, "Not Found")
        return self._ok(list(self.comments.get((repo.full_name, int(number)), [])))


_DETAIL_ONLY = {"merged", "mergeable", "rebaseable", "mergeable_state", "merged_by", "comments", "review_comments",
                "maintainer_can_modify", "commits", "additions", "deletions", "changed_files"}


def _simple_pull(pull: dict[str, Any]) -> dict[str, Any]:
    """A pull request as GitHub lists it (no merge state or counts: those come from GET .../pulls/N only)."""
    return {key: value for key, value in pull.items() if key not in _DETAIL_ONLY}


# -- GitLab ----------------------------------------------------------------------------------------------


@dataclass
class _GitLabProject:
    path: str
    id: int
    default_branch: str
    git: GitHttpServer | None
    git_name: str


class FakeGitLab(_FakeForge):
    """GitLab's API v4 (at `api_url` = url + /api/v4) for the projects added with `add_project`."""

    thread_name = "fake-gitlab"

    def __init__(self, token: str = "gl-token", *, bot_username: str = "aicode-bot", web_base: str = GITLAB_WEB,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(token, host, port)
        self.bot_username = bot_username
        self.bot_id = next(_ids)
        self.web_base = web_base.rstrip("/")
        self.forbid_merge_requests = False  # POST .../merge_requests -> 403
        self.forbid_notes = False  # POST .../notes -> 403
        self.projects: dict[str, _GitLabProject] = {}  # by path_with_namespace
        self.merge_requests: dict[tuple[str, int], dict[str, Any]] = {}  # (path, iid) -> the merge request JSON
        self.issues: dict[tuple[str, int], dict[str, Any]] = {}  # (path, iid) -> the issue JSON
        # (path, "issues" | "merge_requests", iid) -> the notes posted there, as served
        self.notes: defaultdict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
        self._issue_iids: dict[str, itertools.count[int]] = {}
        self._mr_iids: dict[str, itertools.count[int]] = {}
        project = r"/api/v4/projects/([^/]+)"
        self._route("GET", r"/api/v4/user", self._user)
        self._route("GET", project, self._get_project)
        self._route("POST", project + r"/merge_requests", self._create_merge_request)
        self._route("GET", project + r"/merge_requests", self._list_merge_requests)
        self._route("GET", project + r"/merge_requests/(\d+)", self._get_merge_request)
        self._route("GET", project + r"/issues/(\d+)", self._get_issue)
        self._route("POST", project + r"/(issues|merge_requests)/(\d+)/notes", self._create_note)
        self._route("GET", project + r"/(issues|merge_requests)/(\d+)/notes", self._list_notes)

    @property
    def api_url(self) -> str:
        """What https://gitlab.com/api/v4 is for this fake."""
        return f"{self.url}/api/v4"

    # -- set-up and state --------------------------------------------------------------
    def add_project(self, path: str, default_branch: str = "main", *, git: GitHttpServer | None = None,
                    git_name: str | None = None) -> int:
        """Serve project `group/name` (subgroups allowed) and return its numeric id; `git` as FakeGitHub.add_repo."""
        project = _GitLabProject(path, next(_ids) % 100_000, default_branch, git, git_name or path)
        self.projects[path] = project
        self._issue_iids[path] = itertools.count(1)
        self._mr_iids[path] = itertools.count(1)
        return project.id

    def project_id(self, path: str) -> int:
        return self.projects[path].id

    def add_issue(self, path: str, title: str, description: str = "", *, username: str = "someone") -> int:
        """Open an issue in project `path` (by `username`) and return its iid."""
        project = self.projects[path]
        iid = next(self._issue_iids[path])
        stamp = _now("gitlab")
        self.issues[(path, iid)] = {
            "id": next(_ids), "iid": iid, "project_id": project.id, "title": title, "description": description,
            "state": "opened", "created_at": stamp, "updated_at": stamp, "closed_at": None, "closed_by": None,
            "labels": [], "milestone": None, "assignees": [], "assignee": None, "author": self._user_json(username),
            "type": "ISSUE", "issue_type": "issue", "user_notes_count": 0, "upvotes": 0, "downvotes": 0,
            "confidential": False, "discussion_locked": None, "web_url": f"{self.web_base}/{path}/-/issues/{iid}",
            "references": {"short": f"#{iid}", "relative": f"#{iid}", "full": f"{path}#{iid}"},
        }
        return iid

    def set_merge_request_state(self, path: str, iid: int, state: str = "closed") -> None:
        """Close (or merge, or reopen: "opened") a merge request, as someone on GitLab would."""
        stamp = _now("gitlab")
        self.merge_requests[(path, iid)].update(state=state, updated_at=stamp,
                                                closed_at=stamp if state == "closed" else None,
                                                merged_at=stamp if state == "merged" else None)

    def open_merge_requests(self, path: str) -> list[dict[str, Any]]:
        return [mr for (name, _), mr in self.merge_requests.items() if name == path and mr["state"] == "opened"]

    def _project(self, ref: str) -> _GitLabProject | None:
        key = unquote(ref)
        if key.isdigit():
            return next((p for p in self.projects.values() if p.id == int(key)), None)
        return self.projects.get(key)

    # -- answers ------------------------------------------------------------------------
    @staticmethod
    def _message(status: int, message: Any) -> web.Response:
        return web.json_response({"message": message}, status=status)

    def _failure(self, request: web.Request, status: int) -> web.StreamResponse:
        return self._message(status, f"{status} Fake Failure")

    def _auth_refusal(self, request: web.Request) -> web.StreamResponse | None:
        given = request.headers.get("PRIVATE-TOKEN")
        if given is None:
            given = self._bearer(request, "bearer")
        return None if self._token_matches(given) else self._message(401, "401 Unauthorized")

    def _rate_limit_answer(self) -> web.StreamResponse:
        return web.Response(status=429, text="Retry later\n",
                            headers={"Retry-After": "60", "RateLimit-Limit": "600", "RateLimit-Remaining": "0",
                                     "RateLimit-Reset": str(int(time.time()) + 60)})

    def _no_route(self) -> web.StreamResponse:
        return web.json_response({"error": "404 Not Found"}, status=404)

    def _user_json(self, username: str) -> dict[str, Any]:
        user_id = self.bot_id if username == self.bot_username else int(_made_up_sha(username)[:6], 16)
        return {"id": user_id, "username": username, "name": username.replace("-", " ").title(), "state": "active",
                "locked": False, "avatar_url": f"{self.web_base}/uploads/-/system/user/avatar/{user_id}/avatar.png",
                "web_url": f"{self.web_base}/{username}"}

    def _project_json(self, project: _GitLabProject) -> dict[str, Any]:
        namespace, _, name = project.path.rpartition("/")
        http_url = (project.git.repo_url(project.git_name) if project.git
                    else f"{self.web_base}/{project.path}.git")
        return {"id": project.id, "name": name, "path": name, "path_with_namespace": project.path,
                "name_with_namespace": project.path.replace("/", " / "), "default_branch": project.default_branch,
                "web_url": f"{self.web_base}/{project.path}", "http_url_to_repo": http_url,
                "ssh_url_to_repo": f"git@gitlab.example:{project.path}.git", "visibility": "private",
                "namespace": {"full_path": namespace, "path": namespace.rpartition("/")[2]}, "archived": False}

    def _branch_sha(self, project: _GitLabProject, branch: str) -> str | None:
        if project.git is None:
            return _made_up_sha(project.path, branch)
        return project.git.ref(project.git_name, f"refs/heads/{branch}")

    # -- handlers ---------------------------------------------------------------------
    async def _user(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({**self._user_json(self.bot_username), "bot": False, "email": None})

    async def _get_project(self, request: web.Request, ref: str) -> web.StreamResponse:
        project = self._project(ref)
        return web.json_response(self._project_json(project)) if project else self._project_not_found()

    @classmethod
    def _project_not_found(cls) -> web.Response:
        return cls._message(404, "404 Project Not Found")

    async def _create_merge_request(self, request: web.Request, ref: str) -> web.StreamResponse:
        project = self._project(ref)
        if project is None:
            return self._project_not_found()
        if self.forbid_merge_requests:
            return self._message(403, "403 Forbidden")
        data = await _body(request)
        data = data if isinstance(data, dict) else {}
        missing = [key for key in ("source_branch", "target_branch", "title") if not data.get(key)]
        if missing:
            return web.json_response({"error": ", ".join(f"{key} is missing" for key in missing)}, status=400)
        source, target, title = str(data["source_branch"]), str(data["target_branch"]), str(data["title"])
        if source == target:
            return self._message(422, ["You can't use same project/branch for source and target"])
        for mr in self.open_merge_requests(project.path):
            if mr["source_branch"] == source and mr["target_branch"] == target:
                return self._message(409, [f"Another open merge request already exists for this source branch: "
                                           f"!{mr['iid']}"])
        iid = next(self._mr_iids[project.path])
        stamp = _now("gitlab")
        draft = bool(_GITLAB_DRAFT.match(title))  # GitLab has no `draft` attribute here: only the title says so
        sha = self._branch_sha(project, source)
        mr = {
            "id": next(_ids), "iid": iid, "project_id": project.id, "title": title,
            "description": data.get("description"), "state": "opened", "created_at": stamp, "updated_at": stamp,
            "merged_by": None, "merge_user": None, "merged_at": None, "closed_by": None, "closed_at": None,
            "target_branch": target, "source_branch": source, "user_notes_count": 0, "upvotes": 0, "downvotes": 0,
            "author": self._user_json(self.bot_username), "assignees": [], "assignee": None, "reviewers": [],
            "source_project_id": project.id, "target_project_id": project.id, "labels": [], "draft": draft,
            "imported": False, "imported_from": "none", "work_in_progress": draft, "milestone": None,
            "merge_when_pipeline_succeeds": False, "merge_status": "checking", "detailed_merge_status": "checking",
            "sha": sha, "merge_commit_sha": None, "squash_commit_sha": None, "discussion_locked": None,
            "should_remove_source_branch": None, "force_remove_source_branch": bool(data.get("remove_source_branch")),
            "prepared_at": None, "reference": f"!{iid}",
            "references": {"short": f"!{iid}", "relative": f"!{iid}", "full": f"{project.path}!{iid}"},
            "web_url": f"{self.web_base}/{project.path}/-/merge_requests/{iid}",
            "time_stats": {"time_estimate": 0, "total_time_spent": 0, "human_time_estimate": None,
                           "human_total_time_spent": None},
            "squash": bool(data.get("squash")), "squash_on_merge": bool(data.get("squash")),
            "task_completion_status": {"count": 0, "completed_count": 0}, "has_conflicts": False,
            "blocking_discussions_resolved": True, "subscribed": True, "changes_count": None,
            "diff_refs": {"base_sha": self._branch_sha(project, target), "head_sha": sha, "start_sha": None},
        }
        self.merge_requests[(project.path, iid)] = mr
        return web.json_response(mr, status=201)

    async def _list_merge_requests(self, request: web.Request, ref: str) -> web.StreamResponse:
        project = self._project(ref)
        if project is None:
            return self._project_not_found()
        state = request.query.get("state", "all")
        source, target = request.query.get("source_branch"), request.query.get("target_branch")
        found = [mr for (path, _), mr in sorted(self.merge_requests.items(), key=lambda item: -item[0][1])
                 if path == project.path and (state == "all" or mr["state"] == state)
                 and (source is None or mr["source_branch"] == source)
                 and (target is None or mr["target_branch"] == target)]
        return web.json_response(found)

    async def _get_merge_request(self, request: web.Request, ref: str, iid: str) -> web.StreamResponse:
        project = self._project(ref)
        if project is None:
            return self._project_not_found()
        mr = self.merge_requests.get((project.path, int(iid)))
        return web.json_response(mr) if mr else self._message(404, "404 Not found")

    async def _get_issue(self, request: web.Request, ref: str, iid: str) -> web.StreamResponse:
        project = self._project(ref)
        if project is None:
            return self._project_not_found()
        issue = self.issues.get((project.path, int(iid)))
        return web.json_response(issue) if issue else self._message(404, "404 Not found")

    async def _create_note(self, request: web.Request, ref: str, kind: str, iid: str) -> web.StreamResponse:
        project = self._project(ref)
        if project is None:
            return self._project_not_found()
        store = self.issues if kind == "issues" else self.merge_requests
        noteable = store.get((project.path, int(iid)))
        if noteable is None:
            return self._message(404, "404 Not found")
        if self.forbid_notes:
            return self._message(403, "403 Forbidden")
        data = await _body(request)
        data = data if isinstance(data, dict) else {}
        if not data.get("body"):
            return web.json_response({"error": "body is missing"}, status=400)
        stamp = _now("gitlab")
        note = {
            "id": next(_ids), "type": None, "body": str(data["body"]), "attachment": None,
            "author": self._user_json(self.bot_username), "created_at": stamp, "updated_at": stamp, "system": False,
            "noteable_id": noteable["id"], "noteable_type": "Issue" if kind == "issues" else "MergeRequest",
            "project_id": project.id, "resolvable": False, "confidential": False, "internal": False,
            "imported": False, "imported_from": "none", "noteable_iid": int(iid), "commands_changes": {},
        }
        self.notes[(project.path, kind, int(iid))].append(note)
        noteable["user_notes_count"] += 1
        return web.json_response(note, status=201)

    async def _list_notes(self, request: web.Request, ref: str, kind: str, iid: str) -> web.StreamResponse:
        project = self._project(ref)
        if project is None:
            return self._project_not_found()
        store = self.issues if kind == "issues" else self.merge_requests
        if (project.path, int(iid)) not in store:
            return self._message(404, "404 Not found")
        return web.json_response(list(reversed(self.notes.get((project.path, kind, int(iid)), []))))


# -- webhook deliveries ----------------------------------------------------------------------------------


def github_comment_delivery(secret: str, *, repo: str, number: int, title: str, body: str, comment: str,
                            login: str, is_pull_request: bool = False, delivery_id: str | None = None,
                            comment_id: int | None = None, user_type: str = "User", html_base: str = GITHUB_HTML,
                            api_base: str = GITHUB_API) -> tuple[bytes, dict[str, str]]:
    """The raw body and headers of GitHub's `issue_comment` (action `created`) delivery: `login` commented
    `comment` on issue (or pull request) `number` of `repo`, titled `title` with description `body`.
    `user_type="Bot"` makes the commenter a bot (an app's own comments come back so).

    The body is compact JSON (as GitHub sends it), signed with `secret` in X-Hub-Signature-256 (and the
    legacy SHA-1 X-Hub-Signature): a receiver must verify the bytes it got, not a re-serialisation."""
    owner, name = repo.split("/", 1)
    comment_id = comment_id if comment_id is not None else next(_ids)
    api = f"{api_base}/repos/{repo}"
    html = f"{html_base}/{repo}/{'pull' if is_pull_request else 'issues'}/{number}"
    stamp = _now()

    def user(user_login: str, type_: str = "User") -> dict[str, Any]:
        user_id = int(_made_up_sha(user_login)[:7], 16)
        return {"login": user_login, "id": user_id, "node_id": f"U_fake{user_id}",
                "avatar_url": f"https://avatars.githubusercontent.example/u/{user_id}",
                "url": f"{api_base}/users/{user_login}", "html_url": f"{html_base}/{user_login}", "type": type_,
                "site_admin": False}

    issue: dict[str, Any] = {
        "url": f"{api}/issues/{number}", "repository_url": api, "comments_url": f"{api}/issues/{number}/comments",
        "html_url": html, "id": int(_made_up_sha(repo, str(number))[:8], 16), "node_id": f"I_fake{number}",
        "number": number, "title": title, "user": user(login), "labels": [], "state": "open", "locked": False,
        "assignee": None, "assignees": [], "milestone": None, "comments": 1, "created_at": stamp,
        "updated_at": stamp, "closed_at": None, "author_association": "MEMBER", "body": body,
    }
    if is_pull_request:
        issue["pull_request"] = {"url": f"{api}/pulls/{number}", "html_url": html, "diff_url": html + ".diff",
                                 "patch_url": html + ".patch", "merged_at": None}
    repo_id = int(_made_up_sha(repo)[:8], 16)
    payload = {
        "action": "created",
        "issue": issue,
        "comment": {
            "url": f"{api}/issues/comments/{comment_id}", "html_url": f"{html}#issuecomment-{comment_id}",
            "issue_url": f"{api}/issues/{number}", "id": comment_id, "node_id": f"IC_fake{comment_id}",
            "user": user(login, user_type), "created_at": stamp, "updated_at": stamp,
            "author_association": "MEMBER", "body": comment, "performed_via_github_app": None,
        },
        "repository": {
            "id": repo_id, "node_id": f"R_fake{repo_id}", "name": name, "full_name": repo, "private": True,
            "owner": user(owner, "Organization"), "html_url": f"{html_base}/{repo}", "url": api, "fork": False,
            "default_branch": "main", "visibility": "private",
        },
        "sender": user(login, user_type),
    }
    raw = json.dumps(payload, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/8e03811",
        "X-GitHub-Event": "issue_comment",
        "X-GitHub-Delivery": delivery_id or str(uuid.uuid4()),
        "X-GitHub-Hook-ID": "123456789",
        "X-GitHub-Hook-Installation-Target-Type": "repository",
        "X-GitHub-Hook-Installation-Target-ID": str(repo_id),
        "X-Hub-Signature": "sha1=" + hmac.new(secret.encode(), raw, hashlib.sha1).hexdigest(),
        "X-Hub-Signature-256": "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest(),
    }
    return raw, headers


def gitlab_note_delivery(secret: str, *, project: str, iid: int, title: str, description: str, note: str,
                         username: str, on: str = "Issue", event_uuid: str | None = None,
                         idempotency_key: str | None = None,
                         project_id: int = 1, note_id: int | None = None, source_branch: str = "feature",
                         target_branch: str = "main", web_base: str = GITLAB_WEB) -> tuple[bytes, dict[str, str]]:
    """The raw body and headers of GitLab's `Note Hook` delivery: `username` wrote `note` on issue (`on="Issue"`)
    or merge request (`on="MergeRequest"`) `iid` of `project` (path `group/name`; its id is `project_id`,
    e.g. `FakeGitLab.project_id(path)`). GitLab does not sign: it sends the secret in X-Gitlab-Token.

    X-Gitlab-Event-UUID names the event (the same for every hook it goes to); Idempotency-Key names this
    delivery and stays the same when GitLab retries it: pass the same one to simulate a retry."""
    if on not in ("Issue", "MergeRequest"):
        raise ValueError(f"on is Issue or MergeRequest, not {on}")
    note_id = note_id if note_id is not None else next(_ids)
    namespace, _, name = project.rpartition("/")
    project_url = f"{web_base}/{project}"
    page = f"{project_url}/-/{'issues' if on == 'Issue' else 'merge_requests'}/{iid}"
    noteable_id = int(_made_up_sha(project, on, str(iid))[:7], 16)
    stamp = _now("hook")
    user_id = int(_made_up_sha(username)[:6], 16)
    payload: dict[str, Any] = {
        "object_kind": "note",
        "event_type": "note",
        "user": {"id": user_id, "name": username.replace("-", " ").title(), "username": username,
                 "avatar_url": f"{web_base}/uploads/-/system/user/avatar/{user_id}/avatar.png",
                 "email": "[REDACTED]"},
        "project_id": project_id,
        "project": {"id": project_id, "name": name, "description": None, "web_url": project_url,
                    "avatar_url": None, "git_ssh_url": f"git@gitlab.example:{project}.git",
                    "git_http_url": f"{project_url}.git", "namespace": namespace, "visibility_level": 0,
                    "path_with_namespace": project, "default_branch": "main", "ci_config_path": None,
                    "homepage": project_url, "url": f"git@gitlab.example:{project}.git",
                    "ssh_url": f"git@gitlab.example:{project}.git", "http_url": f"{project_url}.git"},
        "object_attributes": {
            "attachment": None, "author_id": user_id, "change_position": None, "commit_id": None,
            "created_at": stamp, "discussion_id": _made_up_sha(str(note_id)), "id": note_id, "line_code": None,
            "note": note, "noteable_id": noteable_id, "noteable_type": on, "original_position": None,
            "position": None, "project_id": project_id, "resolved_at": None, "resolved_by_id": None,
            "resolved_by_push": None, "st_diff": None, "system": False, "type": None, "updated_at": stamp,
            "updated_by_id": None, "description": note, "url": f"{page}#note_{note_id}", "action": "create",
            "internal": False,
        },
        "repository": {"name": name, "url": f"git@gitlab.example:{project}.git", "description": None,
                       "homepage": project_url},
    }
    common = {"id": noteable_id, "iid": iid, "title": title, "description": description, "project_id": project_id,
              "author_id": user_id, "created_at": stamp, "updated_at": stamp, "state": "opened", "labels": [],
              "url": page}
    if on == "Issue":
        payload["issue"] = {**common, "assignee_ids": [], "assignee_id": None, "confidential": False,
                            "milestone_id": None, "type": "Issue"}
    else:
        payload["merge_request"] = {**common, "source_branch": source_branch, "target_branch": target_branch,
                                    "source_project_id": project_id, "target_project_id": project_id,
                                    "merge_status": "can_be_merged", "detailed_merge_status": "mergeable",
                                    "draft": bool(_GITLAB_DRAFT.match(title)),
                                    "work_in_progress": bool(_GITLAB_DRAFT.match(title)), "assignee_id": None}
    raw = json.dumps(payload, separators=(",", ":")).encode()
    event = event_uuid or str(uuid.uuid4())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "GitLab/17.6.0",
        "X-Gitlab-Event": "Note Hook",
        "X-Gitlab-Token": secret,
        "X-Gitlab-Event-UUID": event,
        "X-Gitlab-Webhook-UUID": str(uuid.uuid5(uuid.NAMESPACE_URL, project_url)),
        "X-Gitlab-Instance": web_base,
        "Idempotency-Key": idempotency_key or str(uuid.uuid4()),
    }
    return raw, headers
