"""The "Notifications" section of the settings page (your webhooks) and of a workspace page (its webhooks):
the add form read into the API's request shape."""

from __future__ import annotations

from typing import Any

from litestar import Request

from aicode.notifications.schemas import NotificationHookCreate
from aicode.web.forms import parse_form

__all__ = ["submitted_hook"]


async def submitted_hook(request: Request[Any, Any, Any]) -> NotificationHookCreate:
    """The add form (url, format, one checkbox per event), checked as the JSON API checks it."""
    form = await request.form()
    events = [str(event) for event in form.getall("events", [])]
    return parse_form({"url": str(form.get("url", "")).strip(), "format": str(form.get("format", "json")),
                       "events": events}, NotificationHookCreate)
