"""Users' and workspaces' notification webhooks: managed over the API and the pages, and queued for delivery
when a task's turn ends.

Which moments notify: a task (or live session) that ends `succeeded` or `failed`, and `waiting`: a live
session whose turn is done and that now waits for its next prompt (the moment its viewers get
`session.idle`). A plain task that succeeded also takes follow-ups, but nothing waits on it: that is
`succeeded`. Cancelled and interrupted tasks notify no one (someone stopped them, or the server did).
"""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit
from uuid import UUID

import asyncpg
import structlog

from aicode.access.policy import Action
from aicode.access.service import AccessService
from aicode.audit.service import AuditLog
from aicode.auth.models import UserRecord
from aicode.background import BackgroundTasks
from aicode.crypto import SecretBox
from aicode.errors import InvalidInputError, NotFoundError
from aicode.notifications.delivery import NotificationDelivery
from aicode.notifications.messages import TaskNotice, json_body, slack_body, test_body
from aicode.notifications.repo import NotificationRepo
from aicode.notifications.schemas import EVENTS, NotificationHook, NotificationHookCreate, TestDelivery
from aicode.tasks.models import TaskRecord, TaskStatus
from aicode.tasks.repo import TaskRepo

__all__ = ["NotificationService", "checked_url"]

log = structlog.get_logger(__name__)

_ENDED_EVENTS = {TaskStatus.SUCCEEDED: "succeeded", TaskStatus.FAILED: "failed"}


def checked_url(raw: str) -> tuple[str, str]:
    """(the URL, how it is listed: scheme and host only); 400 unless it is an http(s) URL with a host. A
    private address is allowed: the server, not an agent's container, calls it (teams post to internal chats)."""
    url = raw.strip()
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise InvalidInputError("the webhook URL must not contain spaces or line breaks")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise InvalidInputError("a webhook URL must start with https:// (or http://), such as "
                                "https://hooks.slack.com/services/…")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise InvalidInputError("the webhook URL's port is not a number from 1 to 65535") from None
    if not host:
        raise InvalidInputError("the webhook URL has no host: give the whole address, such as "
                                "https://chat.example.com/hooks/…")
    shown = f"[{host}]" if ":" in host else host
    return url, f"{scheme}://{shown}{f':{port}' if port is not None else ''}/…"


def _hook(row: asyncpg.Record) -> NotificationHook:
    return NotificationHook(
        id=row["id"], url=row["url_shown"], format=row["format"], events=list(row["events"]), enabled=row["enabled"],
        scope="user" if row["user_id"] is not None else "workspace", workspace_id=row["workspace_id"],
        created_at=row["created_at"], last_status=row["last_status"], last_error=row["last_error"],
        last_attempt_at=row["last_attempt_at"])


class NotificationService:
    def __init__(self, repo: NotificationRepo, tasks: TaskRepo, delivery: NotificationDelivery, box: SecretBox,
                 access: AccessService, audit: AuditLog, background: BackgroundTasks, *, site_url: str) -> None:
        self._repo = repo
        self._tasks = tasks
        self._delivery = delivery
        self._box = box
        self._access = access
        self._audit = audit
        self._background = background
        self._site_url = site_url.rstrip("/")

    # -- a user's own webhooks -------------------------------------------------------------------------

    async def list_own(self, actor: UserRecord) -> list[NotificationHook]:
        return [_hook(row) for row in await self._repo.of_user(actor.id)]

    async def create_own(self, actor: UserRecord, data: NotificationHookCreate) -> NotificationHook:
        """A webhook for the tasks `actor` starts or runs a turn of."""
        return await self._create(actor, data, user_id=actor.id)

    async def remove_own(self, actor: UserRecord, hook_id: UUID) -> None:
        if not await self._repo.delete(hook_id, user_id=actor.id):
            raise NotFoundError(f"you have no notification webhook with id {hook_id}")
        await self._audit.record(actor, "notification.remove", ("user", actor.id), hook=str(hook_id))

    async def test_own(self, actor: UserRecord, hook_id: UUID) -> TestDelivery:
        found = await self._repo.secret_url(hook_id, user_id=actor.id)
        if found is None:
            raise NotFoundError(f"you have no notification webhook with id {hook_id}")
        return await self._test(actor, hook_id, *found)

    # -- a workspace's webhooks (members list them, owners manage them) --------------------------------

    async def list_for_workspace(self, actor: UserRecord, workspace_id: UUID) -> list[NotificationHook]:
        await self._access.workspace(actor, workspace_id, Action.VIEW)
        return [_hook(row) for row in await self._repo.of_workspace(workspace_id)]

    async def create_for_workspace(self, actor: UserRecord, workspace_id: UUID,
                                   data: NotificationHookCreate) -> NotificationHook:
        """A webhook for every task of the workspace (owners)."""
        await self._access.workspace(actor, workspace_id, Action.NOTIFY)
        return await self._create(actor, data, workspace_id=workspace_id)

    async def remove_for_workspace(self, actor: UserRecord, workspace_id: UUID, hook_id: UUID) -> None:
        await self._access.workspace(actor, workspace_id, Action.NOTIFY)
        if not await self._repo.delete(hook_id, workspace_id=workspace_id):
            raise NotFoundError(f"the workspace has no notification webhook with id {hook_id}")
        await self._audit.record(actor, "notification.remove", ("workspace", workspace_id), hook=str(hook_id))

    async def test_for_workspace(self, actor: UserRecord, workspace_id: UUID, hook_id: UUID) -> TestDelivery:
        await self._access.workspace(actor, workspace_id, Action.NOTIFY)
        found = await self._repo.secret_url(hook_id, workspace_id=workspace_id)
        if found is None:
            raise NotFoundError(f"the workspace has no notification webhook with id {hook_id}")
        return await self._test(actor, hook_id, *found)

    async def _create(self, actor: UserRecord, data: NotificationHookCreate, *, user_id: UUID | None = None,
                      workspace_id: UUID | None = None) -> NotificationHook:
        url, shown = checked_url(data.url)
        events: list[str] = sorted(set(data.events), key=EVENTS.index)
        row = await self._repo.insert(uuid.uuid4(), user_id=user_id, workspace_id=workspace_id,
                                      url_enc=self._box.seal(url), url_shown=shown, format_=data.format,
                                      events=events, created_by=actor.id)
        owner = ("user", actor.id) if user_id is not None else ("workspace", workspace_id)
        await self._audit.record(actor, "notification.add", owner, hook=str(row["id"]), url=shown,
                                 format=data.format, events=events)
        log.info("notifications.hook_added", hook_id=str(row["id"]), scope=owner[0], format=data.format)
        return _hook(row)

    async def _test(self, actor: UserRecord, hook_id: UUID, format_: str, url_enc: bytes) -> TestDelivery:
        """Send a test message now; its outcome is the webhook's last attempt too."""
        result = await self._delivery.send(self._box.open(url_enc), test_body(format_, self._site_url,
                                                                               actor.username))
        await self._repo.record_attempt(hook_id, result.status_code, result.error)
        return result

    # -- tasks' moments ----------------------------------------------------------------------------------

    def task_ended(self, task: TaskRecord) -> None:
        """Told as a turn's record is closed: a task (or session) that ended succeeded or failed notifies.
        Queued in the background and sent by the delivery loop, so no receiver ever holds a task up."""
        event = _ENDED_EVENTS.get(task.status) if task.finished_at is not None else None
        if event is not None:
            self._background.spawn(self._enqueue(task.id, event), name=f"notify-{task.id}")

    def session_waiting(self, task_id: UUID) -> None:
        """Told as a live session goes idle, waiting for its next prompt."""
        self._background.spawn(self._enqueue(task_id, "waiting"), name=f"notify-{task_id}")

    async def _enqueue(self, task_id: UUID, event: str) -> None:
        try:
            task = await self._tasks.get(task_id)
            names = await self._repo.names(task_id)
            # A session that was never asked anything waits for its first prompt: its creator is looking at it.
            if task is None or names is None or (event == "waiting" and task.turns == 0):
                return
            notice = TaskNotice(event=event, task=task, workspace=names["workspace"], started_by=names["started_by"],
                                turn_by=names["turn_by"], url=f"{self._site_url}/tasks/{task.id}")
            queued = await self._repo.enqueue(task.id, task.workspace_id, list({task.user_id, task.turn_user_id}),
                                              event, {"slack": slack_body(notice), "json": json_body(notice)})
        except Exception as exc:  # a notification lost must never take anything else down
            log.error("notifications.enqueue_failed", task_id=str(task_id), event=event, exc_info=exc)
            return
        if queued:
            self._delivery.nudge()
