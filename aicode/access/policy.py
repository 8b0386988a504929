"""The access rule: what each workspace role may do. Services ask `permits`; nothing else decides.

- `viewer`: sees the workspace, all its tasks, their live events, diff, files and patch, its members;
- `editor`: also submits tasks, sends follow-ups (run with the sender's own credential), syncs the
  mirror, cancels the tasks it started, and publishes tasks' work: pushes their branches, opens
  pull requests and rebases them;
- `owner`: also changes the workspace's settings, its members and team credential, adds and removes
  its notification webhooks (members see them listed, redacted), cancels any task and deletes the workspace.
Admins may do everything. Someone with no role in a workspace cannot even learn it exists.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol
from uuid import UUID

__all__ = ["Action", "Role", "listing_scope", "permits"]


class _Person(Protocol):
    @property
    def id(self) -> UUID: ...

    @property
    def is_admin(self) -> bool: ...


class Role(StrEnum):
    VIEWER = "viewer"
    EDITOR = "editor"
    OWNER = "owner"


class Action(StrEnum):
    VIEW = "view"
    RUN = "run"  # submit tasks and follow-ups
    SYNC = "sync"
    CANCEL_OWN = "cancel_own"  # cancel a task one started
    CANCEL_ANY = "cancel_any"
    PUBLISH = "publish"  # push a task's branch, open its pull request, rebase it
    MANAGE = "manage"  # settings, members, team credential
    NOTIFY = "notify"  # add, remove and test the workspace's notification webhooks
    DELETE = "delete"


_GRANTS: dict[Role, frozenset[Action]] = {
    Role.VIEWER: frozenset({Action.VIEW}),
    Role.EDITOR: frozenset({Action.VIEW, Action.RUN, Action.SYNC, Action.CANCEL_OWN, Action.PUBLISH}),
    Role.OWNER: frozenset(Action),
}


def permits(role: Role | None, action: Action, *, admin: bool = False) -> bool:
    """Whether someone with `role` in a workspace (None: no role) may do `action` there."""
    if admin:
        return True
    return role is not None and action in _GRANTS[role]


def listing_scope(person: _Person) -> UUID | None:
    """Whose memberships bound what a listing shows (`aicode.access.repo.visible_to`): the person's,
    or None for an admin, who sees every workspace and task."""
    return None if person.is_admin else person.id
