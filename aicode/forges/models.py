"""A workspace's forge, what aicode opened there, and a comment that asks for a task."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["DEFAULT_API_URLS", "DEFAULT_TRIGGER", "ForgeComment", "ForgeSettings", "PullRequest", "Kind"]

Kind = Literal["github", "gitlab"]

DEFAULT_API_URLS: dict[str, str] = {"github": "https://api.github.com", "gitlab": "https://gitlab.com/api/v4"}
DEFAULT_TRIGGER = "@aicode"


@dataclass(frozen=True, slots=True)
class ForgeSettings:
    """Where a workspace's pull requests go: `repo` is `owner/name` (GitLab: the project path)."""

    kind: Kind
    api_url: str
    repo: str
    trigger: str = DEFAULT_TRIGGER

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> ForgeSettings | None:
        if not data:
            return None
        return cls(kind=data["kind"], api_url=data["api_url"], repo=data["repo"],
                   trigger=data.get("trigger") or DEFAULT_TRIGGER)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "api_url": self.api_url, "repo": self.repo, "trigger": self.trigger}

    @property
    def name(self) -> str:
        return "GitHub" if self.kind == "github" else "GitLab"


@dataclass(frozen=True, slots=True)
class PullRequest:
    """A pull request (GitLab: merge request) as aicode keeps it on the task."""

    url: str
    number: int
    state: str  # open, draft, closed or merged
    draft: bool
    reused: bool = False  # it existed already for the branch

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "number": self.number, "state": self.state, "draft": self.draft}


@dataclass(frozen=True, slots=True)
class ForgeComment:
    """A comment on an issue or pull request that mentions the trigger, from a signed delivery."""

    kind: Kind
    delivery_id: str
    repo: str  # as the forge names it: owner/name or the project path
    number: int  # the or pull request's number (GitLab: iid)
    on_pull_request: bool
    title: str
    body: str
    comment: str
    login: str  # who wrote the comment, on the forge
    comment_url: str | None

    def origin(self) -> dict[str, Any]:
        """What the task keeps of it, to answer there when the task ends."""
        return {"kind": self.kind, "repo": self.repo, "number": self.number, "on_pull_request": self.on_pull_request,
                "login": self.login, "comment_url": self.comment_url, "delivery_id": self.delivery_id}
