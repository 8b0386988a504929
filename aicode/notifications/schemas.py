"""Request and response shapes of the notification webhook endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

__all__ = ["EVENTS", "FORMATS", "Event", "Format", "NotificationHook", "NotificationHookCreate", "TestDelivery"]

# "waiting": a live session finished a turn and waits for its next prompt (see aicode.notifications.service).
Event = Literal["succeeded", "failed", "waiting"]
Format = Literal["slack", "json"]
EVENTS: tuple[Event, ...] = ("succeeded", "failed", "waiting")
FORMATS: tuple[Format, ...] = ("slack", "json")


class NotificationHookCreate(msgspec.Struct, forbid_unknown_fields=True):
    """An http(s) URL; `slack`: Slack-compatible incoming-webhook JSON, `json`: aicode's own event JSON."""

    url: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
    format: Format = "json"
    events: Annotated[list[Event], msgspec.Meta(min_length=1, max_length=3)] = msgspec.field(
        default_factory=lambda: list(EVENTS))


class NotificationHook(msgspec.Struct):
    """A webhook as listed: its URL only as scheme and host (the rest may be a secret)."""

    id: UUID
    url: str
    format: str
    events: list[str]
    enabled: bool
    scope: str  # "user" or "workspace"
    workspace_id: UUID | None
    created_at: datetime
    last_status: int | None  # the receiver's HTTP status at the last attempt (a delivery or a test)
    last_error: str | None  # why the last attempt failed, when it did
    last_attempt_at: datetime | None


class TestDelivery(msgspec.Struct):
    """What the receiver answered to a test message: `delivered` when its status was 2xx."""

    delivered: bool
    status_code: int | None
    error: str | None
