"""`/api/me/notifications` and `/api/workspaces/{id}/notifications`: notification webhooks, listed with
their URL redacted to scheme and host."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Controller, Request, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from aicode.auth.models import UserRecord
from aicode.notifications.schemas import NotificationHook, NotificationHookCreate, TestDelivery
from aicode.notifications.service import NotificationService

__all__ = ["OwnNotificationController", "WorkspaceNotificationController"]


class OwnNotificationController(Controller):
    """Your webhooks: called for the tasks you start or run a turn of, in workspaces you are a member of."""

    path = "/api/me/notifications"
    tags = ["notifications"]

    @get("/")
    async def list_hooks(self, request: Request[UserRecord, Any, Any],
                         notification_service: NamedDependency[NotificationService]) -> list[NotificationHook]:
        return await notification_service.list_own(request.user)

    @post("/", status_code=HTTP_201_CREATED)
    async def create(self, data: JSONBody[NotificationHookCreate], request: Request[UserRecord, Any, Any],
                     notification_service: NamedDependency[NotificationService]) -> NotificationHook:
        """Add a webhook; its URL is stored encrypted and only its scheme and host are shown again."""
        return await notification_service.create_own(request.user, data)

    @delete("/{hook_id:uuid}", status_code=HTTP_204_NO_CONTENT)
    async def remove(self, hook_id: FromPath[UUID], request: Request[UserRecord, Any, Any],
                     notification_service: NamedDependency[NotificationService]) -> None:
        await notification_service.remove_own(request.user, hook_id)

    @post("/{hook_id:uuid}/test", status_code=HTTP_200_OK)
    async def test(self, hook_id: FromPath[UUID], request: Request[UserRecord, Any, Any],
                   notification_service: NamedDependency[NotificationService]) -> TestDelivery:
        """Send a test message now; answers with the receiver's status, or why it could not be reached."""
        return await notification_service.test_own(request.user, hook_id)


class WorkspaceNotificationController(Controller):
    """A workspace's webhooks, called for every task in it: members list them, owners manage them."""

    path = "/api/workspaces/{workspace_id:uuid}/notifications"
    tags = ["notifications"]

    @get("/")
    async def list_hooks(self, workspace_id: FromPath[UUID], request: Request[UserRecord, Any, Any],
                         notification_service: NamedDependency[NotificationService]) -> list[NotificationHook]:
        return await notification_service.list_for_workspace(request.user, workspace_id)

    @post("/", status_code=HTTP_201_CREATED)
    async def create(self, workspace_id: FromPath[UUID], data: JSONBody[NotificationHookCreate],
                     request: Request[UserRecord, Any, Any],
                     notification_service: NamedDependency[NotificationService]) -> NotificationHook:
        """Add a webhook (owners); its URL is stored encrypted and only its scheme and host are shown again."""
        return await notification_service.create_for_workspace(request.user, workspace_id, data)

    @delete("/{hook_id:uuid}", status_code=HTTP_204_NO_CONTENT)
    async def remove(self, workspace_id: FromPath[UUID], hook_id: FromPath[UUID],
                     request: Request[UserRecord, Any, Any],
                     notification_service: NamedDependency[NotificationService]) -> None:
        await notification_service.remove_for_workspace(request.user, workspace_id, hook_id)

    @post("/{hook_id:uuid}/test", status_code=HTTP_200_OK)
    async def test(self, workspace_id: FromPath[UUID], hook_id: FromPath[UUID],
                   request: Request[UserRecord, Any, Any],
                   notification_service: NamedDependency[NotificationService]) -> TestDelivery:
        """Send a test message now (owners); answers with the receiver's status, or why it could not be reached."""
        return await notification_service.test_for_workspace(request.user, workspace_id, hook_id)
