"""Request and response shapes of the forge endpoints."""

from __future__ import annotations

from typing import Annotated

import msgspec

__all__ = ["DeliveryOut", "ForgeIdentities", "ForgeIdentitiesUpdate", "PullRequestCreate", "PullRequestOut",
           "PushOut", "RebaseOut", "WebhookSetupOut"]

GitHubLogin = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$",
                                          description="a GitHub login")]
GitLabUsername = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}$",
                                             description="a GitLab username")]


class PushOut(msgspec.Struct):
    remote_branch: str
    commit: str
    created: bool  # the branch is new on the remote
    forced: bool  # the remote branch was replaced (after a rebase) rather than fast-forwarded
    up_to_date: bool = False  # it was at the commit already: nothing was sent


class PullRequestCreate(msgspec.Struct, forbid_unknown_fields=True):
    draft: bool | None = None  # default: a draft when the workspace's auto_pr is "draft"
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=256)] | None = None
    body: Annotated[str, msgspec.Meta(min_length=1, max_length=60_000)] | None = None


class PullRequestOut(msgspec.Struct):
    url: str
    number: int
    state: str  # open, draft, closed or merged
    draft: bool
    reused: bool  # it was open already for the task's branch


class RebaseOut(msgspec.Struct):
    rebased: bool  # False: the task was on the latest base branch already
    onto: str
    base_commit: str
    head_commit: str | None
    replayed: int  # commits moved
    pushed: PushOut | None = None  # pushed again, for a task that had been pushed


class ForgeIdentities(msgspec.Struct):
    github: str | None = None
    gitlab: str | None = None


class ForgeIdentitiesUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """A login links it, null unlinks it, a field left out stays as it is."""

    github: GitHubLogin | None | msgspec.UnsetType = msgspec.UNSET
    gitlab: GitLabUsername | None | msgspec.UnsetType = msgspec.UNSET


class WebhookSetupOut(msgspec.Struct):
    """Give the forge this URL and secret; the secret is shown this once."""

    url: str
    secret: str
    kind: str
    content_type: str
    events: list[str]


class DeliveryOut(msgspec.Struct):
    status: str  # accepted, ignored, not_linked, not_allowed or refused
    detail: str
    task_id: str | None = None
