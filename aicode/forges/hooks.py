"""Tasks asked for on the forge: a signed webhook delivery of a comment that mentions the trigger starts
a task for the aicode user linked to the commenter's forge login, if that user may run tasks in the
workspace. Also the two set-ups it needs: the workspace's webhook secret and people's forge logins."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from uuid import UUID

import structlog

from aicode.access.policy import Action, permits
from aicode.access.service import AccessService
from aicode.audit.service import AuditLog
from aicode.auth.models import UserRecord
from aicode.auth.repo import UserRepo
from aicode.background import BackgroundTasks
from aicode.crypto import SecretBox
from aicode.errors import AicodeError, AuthenticationError, ConflictError, InvalidInputError, NotFoundError
from aicode.forges.models import ForgeComment, ForgeSettings, Kind
from aicode.forges.publisher import ForgePublisher
from aicode.forges.repo import ForgeRepo
from aicode.forges.webhooks import delivery_id, mentions, parse_comment, verify_signature
from aicode.tasks.schemas import TaskCreate
from aicode.tasks.service import TaskService
from aicode.workspaces.models import WorkspaceChange, WorkspaceRecord
from aicode.workspaces.repo import WorkspaceRepo

__all__ = ["Delivery", "ForgeHooks", "WebhookSetup"]

log = structlog.get_logger(__name__)

_EVENTS = {"github": ["Issue comments", "Pull request review comments"], "gitlab": ["Comments"]}


@dataclass(frozen=True, slots=True)
class WebhookSetup:
    url: str
    secret: str
    kind: str
    events: list[str]


@dataclass(frozen=True, slots=True)
class Delivery:
    """What a delivery led to: accepted (a task), ignored, not_linked, not_allowed or refused."""

    status: str
    detail: str
    task_id: UUID | None = None


def _asked(comment: ForgeComment, trigger: str) -> str:
    return re.sub(rf"(?<![\w@./-]){re.escape(trigger)}(?![\w-])", "", comment.comment, flags=re.IGNORECASE).strip()


def follow_up_prompt(comment: ForgeComment, trigger: str) -> str:
    """A comment on the task's own pull request: what it asks, and who asked where."""
    return (f"{_asked(comment, trigger) or 'Please address the comments on the pull request.'}\n\n"
            f"---\nThis was asked in a comment by {comment.login} on the task's pull request #{comment.number}.\n")


def task_prompt(comment: ForgeComment, trigger: str) -> str:
    """The comment (without the mention) and the issue or pull request it was written on."""
    asked = _asked(comment, trigger)
    where = "pull request" if comment.on_pull_request else "issue"
    return (f"{asked or 'Please look into this ' + where + '.'}\n\n"
            f"---\nThis was asked in a comment by {comment.login} on {where} #{comment.number} of {comment.repo}:\n\n"
            f"# {comment.title}\n\n{comment.body.strip()}\n")


class ForgeHooks:
    def __init__(self, repo: ForgeRepo, workspaces: WorkspaceRepo, access: AccessService, users: UserRepo,
                 tasks: TaskService, publisher: ForgePublisher, box: SecretBox, audit: AuditLog,
                 background: BackgroundTasks, *, site_url: str) -> None:
        self._repo = repo
        self._workspaces = workspaces
        self._access = access
        self._users = users
        self._tasks = tasks
        self._publisher = publisher
        self._box = box
        self._audit = audit
        self._background = background
        self._site_url = site_url

    # -- set-ups -------------------------------------------------------------------------------------

    async def identities(self, actor: UserRecord) -> dict[str, str]:
        return await self._repo.identities(actor.id)

    async def link(self, actor: UserRecord, logins: dict[str, str | None]) -> dict[str, str]:
        linked = await self._repo.set_identities(actor.id, logins)
        await self._audit.record(actor, "forge_identity.update", ("user", actor.id), linked=linked)
        return linked

    async def set_up_webhook(self, actor: UserRecord, workspace_id: UUID) -> WebhookSetup:
        """A new webhook secret for the workspace (shown this once; the old one stops working)."""
        workspace = (await self._access.workspace(actor, workspace_id, Action.MANAGE)).workspace
        forge = ForgeSettings.from_json(workspace.forge)
        if forge is None:
            raise ConflictError("set the workspace's forge {kind, repo} first: the webhook belongs to it")
        secret = secrets.token_urlsafe(32)
        await self._workspaces.update(workspace.id, WorkspaceChange(webhook_secret_enc=self._box.seal(secret)))
        await self._audit.record(actor, "workspace.webhook_secret", ("workspace", workspace.id))
        return WebhookSetup(url=f"{self._site_url}/api/hooks/{forge.kind}/{workspace.id}", secret=secret,
                            kind=forge.kind, events=_EVENTS[forge.kind])

    async def remove_webhook(self, actor: UserRecord, workspace_id: UUID) -> None:
        workspace = (await self._access.workspace(actor, workspace_id, Action.MANAGE)).workspace
        await self._workspaces.update(workspace.id, WorkspaceChange(cleared=("webhook_secret_enc",)))
        await self._audit.record(actor, "workspace.webhook_removed", ("workspace", workspace.id))

    # -- deliveries ----------------------------------------------------------------------------------

    async def deliver(self, kind: Kind, workspace_id: UUID, body: bytes, headers: Mapping[str, str]) -> Delivery:
        """Act on one delivery: refused unless signed with the workspace's secret and new."""
        workspace = await self._workspaces.get(workspace_id)
        if workspace is None:
            raise NotFoundError(f"no workspace with id {workspace_id}")
        forge = ForgeSettings.from_json(workspace.forge)
        if forge is None or workspace.webhook_secret_enc is None:
            raise AuthenticationError("this workspace has no webhook set up: an owner sets it up with "
                                      f"POST /api/workspaces/{workspace_id}/webhook")
        if forge.kind != kind:
            raise InvalidInputError(f"this workspace's forge is {forge.name}: send its deliveries to "
                                    f"/api/hooks/{forge.kind}/{workspace_id}")
        verify_signature(kind, self._box.open(workspace.webhook_secret_enc), body, headers)
        delivery = delivery_id(kind, headers)
        if not await self._repo.claim_delivery(kind, delivery, workspace.id):
            raise ConflictError(f"delivery {delivery} was received before: each delivery is acted on once")
        comment = parse_comment(kind, body, headers, delivery)
        if comment is None:
            return Delivery("ignored", "not a new comment on an issue or pull request")
        if comment.repo.lower() != forge.repo.lower():
            return Delivery("ignored", f"the comment is on {comment.repo}, not on this workspace's {forge.repo}")
        if not mentions(comment.comment, forge.trigger):
            return Delivery("ignored", f"the comment does not mention {forge.trigger}")
        return await self._start(workspace, forge, comment)

    async def _start(self, workspace: WorkspaceRecord, forge: ForgeSettings, comment: ForgeComment) -> Delivery:
        user = await self._linked(comment)
        if user is None:
            self._answer(workspace, comment,
                         f"@{comment.login} your {forge.name} login is not linked to an aicode user, so no task was "
                         f"started. Link it on aicode's Settings page ({self._site_url}/settings), then ask again.")
            return Delivery("not_linked", f"{comment.login} is not linked to an aicode user")
        role = await self._access.role(user, workspace.id)
        if not permits(role, Action.RUN, admin=user.is_admin):
            self._answer(workspace, comment,
                         f"@{comment.login} you are {role.value if role else 'not a member'} in the aicode workspace "
                         f"{workspace.name}: only an editor or owner may start tasks there.")
            return Delivery("not_allowed", f"{user.username} may not run tasks in this workspace")
        try:
            continued = await self._continue(user, workspace, comment, follow_up_prompt(comment, forge.trigger))
            if continued is not None:
                return continued
            task = await self._tasks.submit(user, workspace.id, TaskCreate(prompt=task_prompt(comment, forge.trigger)),
                                            origin=comment.origin())
        except AicodeError as exc:
            self._answer(workspace, comment, f"@{comment.login} the task could not be started: {exc.detail}")
            return Delivery("refused", exc.detail)
        await self._audit.record(user, "task.from_forge", ("task", task.id), forge=forge.kind,
                                 number=comment.number, delivery=comment.delivery_id)
        # The answer, with the task's links, comes when the task ends (ForgePublisher).
        log.info("forge.task_started", task_id=str(task.id), forge=forge.kind, login=comment.login)
        return Delivery("accepted", "task started", task_id=task.id)

    async def _continue(self, user: UserRecord, workspace: WorkspaceRecord, comment: ForgeComment,
                        prompt: str) -> Delivery | None:
        """A comment on a task's own pull request is a follow-up of that task: same session, same branch,
        and the pull request updated by the re-push after the turn. None when the pull request is not one."""
        task_id = await self._repo.task_for_pull_request(workspace.id, comment.number) \
            if comment.on_pull_request else None
        if task_id is None:
            return None
        before = await self._tasks.get(user, task_id)
        # Set first: the turn may end before this delivery's answer is sent, and its end answers the comment.
        await self._repo.set_origin(task_id, comment.origin())
        try:
            await self._tasks.follow_up(user, task_id, prompt)
        except AicodeError:
            await self._repo.set_origin(task_id, before.origin)
            raise
        await self._audit.record(user, "task.follow_up_from_forge", ("task", task_id), forge=comment.kind,
                                 number=comment.number, delivery=comment.delivery_id)
        return Delivery("accepted", "follow-up queued on the pull request's task", task_id=task_id)

    async def _linked(self, comment: ForgeComment) -> UserRecord | None:
        user_id = await self._repo.user_for(comment.kind, comment.login) if comment.login else None
        user = await self._users.get(user_id) if user_id is not None else None
        return None if user is None or user.disabled else user

    def _answer(self, workspace: WorkspaceRecord, comment: ForgeComment, text: str) -> None:
        """Reply on the forge without keeping the forge waiting for the delivery's answer."""
        self._background.spawn(self._publisher.comment(workspace, comment.number, comment.on_pull_request, text),
                               name=f"forge-reply-{comment.delivery_id}")

