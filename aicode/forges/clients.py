"""GitHub's REST API (v3) and GitLab's (v4): pull requests and comments, with the forge's refusals
turned into errors that name the cause.

Each call is checked against the server's rules for outbound addresses first (`check_remote_host`) and
never follows a redirect: a forge URL is a way to make the server connect somewhere, as a repository
URL is.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from aicode.errors import AicodeError, BadGatewayError, ConflictError, ForbiddenError, TooManyError
from aicode.forges.models import ForgeSettings, PullRequest
from aicode.workspaces.remotes import check_remote_host

__all__ = ["ForgeClient", "GitHubClient", "GitLabClient", "client_for"]

_TIMEOUT_S = 30.0
_SHOWN = 300
_USER_AGENT = "aicode"


class ForgeClient(Protocol):
    async def open_pull_request(self, *, head: str, base: str, title: str, body: str, draft: bool) -> PullRequest:
        """Open a pull request from `head` into `base`, or return the open one that exists for `head`."""

    async def comment(self, number: int, on_pull_request: bool, body: str) -> None:
        """Add a comment to an issue or pull request."""


def _said(response: httpx.Response) -> str:
    """What the forge said about a refusal, short and printable."""
    try:
        data = response.json()
    except ValueError:
        text = response.text
    else:
        text = _message_of(data)
    text = " ".join(text.split())
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text[:_SHOWN] + ("…" if len(text) > _SHOWN else "")


def _message_of(data: Any) -> str:
    if isinstance(data, dict):
        parts = [_message_of(data.get("message"))] if data.get("message") is not None else []
        for error in data.get("errors") or []:
            parts.append(_message_of(error.get("message") if isinstance(error, dict) else error))
        return "; ".join(part for part in parts if part)
    if isinstance(data, list):
        return "; ".join(_message_of(item) for item in data)
    return "" if data is None else str(data)


class _Http:
    """One forge's HTTP API: requests checked, sent and their failures explained."""

    def __init__(self, forge: ForgeSettings, token: str | None, headers: dict[str, str],
                 allowed_hosts: tuple[str, ...]) -> None:
        self.forge = forge
        self._token = token
        self._headers = {"User-Agent": _USER_AGENT, **headers}
        self._allowed = allowed_hosts

    async def call(self, method: str, path: str, *, json: Any = None,
                   params: dict[str, str] | None = None) -> httpx.Response:
        url = self.forge.api_url.rstrip("/") + path
        if self._token is None:
            raise ConflictError(f"the workspace has no token for {self.forge.name}: set forge.token (or the "
                                "repository token) on the workspace")
        await asyncio.to_thread(check_remote_host, url, self._allowed)
        try:
            async with httpx.AsyncClient(timeout=_TIMEOUT_S, follow_redirects=False) as client:
                return await client.request(method, url, json=json, params=params, headers=self._headers)
        except httpx.HTTPError as exc:
            raise BadGatewayError(f"{self.forge.name} at {self.forge.api_url} could not be reached "
                                  f"({exc.__class__.__name__})") from None

    def refusal(self, response: httpx.Response, action: str) -> AicodeError:
        """The error for a forge answer that is not a success, naming the cause."""
        status, said = response.status_code, _said(response)
        where = f"{self.forge.name} ({self.forge.repo})"
        because = f" ({response.status_code}: {said})" if said else f" ({response.status_code})"
        if status == 401:
            return ForbiddenError(f"{where} refused the workspace's token while trying to {action}: it is wrong or "
                                  f"expired{because}")
        limited = status == 429 or (status == 403 and response.headers.get("x-ratelimit-remaining") == "0")
        if limited:
            retry = response.headers.get("retry-after")
            return TooManyError(f"{where} rate-limited aicode while trying to {action}: try again later{because}",
                                retry_after_s=int(retry) if retry and retry.isdigit() else 60)
        if status == 403:
            return ForbiddenError(f"{where} does not let the workspace's token {action}: give it that "
                                  f"permission{because}")
        if status == 404:
            return ConflictError(f"{where} has no such repository, or the workspace's token cannot see it, so "
                                 f"aicode could not {action}: check forge.repo and the token{because}")
        if 400 <= status < 500:
            return ConflictError(f"{where} refused to {action}{because}")
        if 300 <= status < 400:
            return BadGatewayError(f"{where} answered with a redirect, which aicode does not follow: set forge.api_url "
                                   f"to the API's final address")
        return BadGatewayError(f"{where} failed to {action}{because}")

    @staticmethod
    def json(response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise BadGatewayError("the forge answered with something that is not JSON") from None


def _github_pull(data: Any, reused: bool) -> PullRequest:
    if not isinstance(data, dict) or not isinstance(data.get("number"), int):
        raise BadGatewayError("GitHub's answer has no pull request number")
    draft = bool(data.get("draft"))
    state = "merged" if data.get("merged_at") else str(data.get("state") or "open")
    return PullRequest(url=str(data.get("html_url") or ""), number=data["number"],
                       state="draft" if draft and state == "open" else state, draft=draft, reused=reused)


class GitHubClient:
    def __init__(self, forge: ForgeSettings, token: str | None, allowed_hosts: tuple[str, ...]) -> None:
        self._http = _Http(forge, token, {"Accept": "application/vnd.github+json",
                                          "X-GitHub-Api-Version": "2022-11-28",
                                          "Authorization": f"Bearer {token}"}, allowed_hosts)
        self._repo = "/".join(quote(part, safe="") for part in forge.repo.split("/"))

    async def open_pull_request(self, *, head: str, base: str, title: str, body: str, draft: bool) -> PullRequest:
        http = self._http
        created = await http.call("POST", f"/repos/{self._repo}/pulls",
                                  json={"title": title, "head": head, "base": base, "body": body, "draft": draft})
        if created.status_code == 201:
            return _github_pull(http.json(created), reused=False)
        if created.status_code == 422 and "already exists" in _said(created).lower():
            owner = http.forge.repo.split("/")[0]
            found = await http.call("GET", f"/repos/{self._repo}/pulls",
                                    params={"head": f"{owner}:{head}", "state": "open"})
            pulls = http.json(found) if found.status_code == 200 else None
            if isinstance(pulls, list) and pulls:
                return _github_pull(pulls[0], reused=True)
        raise http.refusal(created, "open a pull request")

    async def comment(self, number: int, on_pull_request: bool, body: str) -> None:
        # Pull requests are issues to GitHub's comment API.
        answer = await self._http.call("POST", f"/repos/{self._repo}/issues/{number}/comments", json={"body": body})
        if answer.status_code != 201:
            raise self._http.refusal(answer, "comment")


def _gitlab_merge_request(data: Any, reused: bool) -> PullRequest:
    if not isinstance(data, dict) or not isinstance(data.get("iid"), int):
        raise BadGatewayError("GitLab's answer has no merge request iid")
    draft = bool(data.get("draft") or data.get("work_in_progress"))
    state = {"opened": "open"}.get(str(data.get("state")), str(data.get("state") or "open"))
    return PullRequest(url=str(data.get("web_url") or ""), number=data["iid"],
                       state="draft" if draft and state == "open" else state, draft=draft, reused=reused)


class GitLabClient:
    def __init__(self, forge: ForgeSettings, token: str | None, allowed_hosts: tuple[str, ...]) -> None:
        self._http = _Http(forge, token, {"PRIVATE-TOKEN": token or ""}, allowed_hosts)
        self._project = quote(forge.repo, safe="")

    async def open_pull_request(self, *, head: str, base: str, title: str, body: str, draft: bool) -> PullRequest:
        http = self._http
        # GitLab marks a draft by its title (the `draft` field is read-only in older versions).
        shown = f"Draft: {title}" if draft else title
        created = await http.call("POST", f"/projects/{self._project}/merge_requests",
                                  json={"source_branch": head, "target_branch": base, "title": shown,
                                        "description": body, "remove_source_branch": False})
        if created.status_code == 201:
            return _gitlab_merge_request(http.json(created), reused=False)
        if created.status_code == 409 and "already exists" in _said(created).lower():
            found = await http.call("GET", f"/projects/{self._project}/merge_requests",
                                    params={"source_branch": head, "state": "opened"})
            requests = http.json(found) if found.status_code == 200 else None
            if isinstance(requests, list) and requests:
                return _gitlab_merge_request(requests[0], reused=True)
        raise http.refusal(created, "open a merge request")

    async def comment(self, number: int, on_pull_request: bool, body: str) -> None:
        kind = "merge_requests" if on_pull_request else "issues"
        answer = await self._http.call("POST", f"/projects/{self._project}/{kind}/{number}/notes",
                                       json={"body": body})
        if answer.status_code != 201:
            raise self._http.refusal(answer, "comment")


def client_for(forge: ForgeSettings, token: str | None, allowed_hosts: tuple[str, ...]) -> ForgeClient:
    if forge.kind == "github":
        return GitHubClient(forge, token, allowed_hosts)
    return GitLabClient(forge, token, allowed_hosts)
