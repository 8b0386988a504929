"""Reading a forge's webhook delivery: is it signed by the workspace's secret, and is it a comment that
asks for a task? Pure functions over the raw body and headers; the service acts on the answer."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from typing import Any

from aicode.errors import AuthenticationError, InvalidInputError
from aicode.forges.models import ForgeComment, Kind

__all__ = ["MAX_DELIVERY_BYTES", "delivery_id", "mentions", "parse_comment", "verify_signature"]

MAX_DELIVERY_BYTES = 5 * 1024 * 1024  # GitHub caps payloads at 25 MB; comments are far smaller
_MAX_TEXT = 60_000


def verify_signature(kind: Kind, secret: str, body: bytes, headers: Mapping[str, str]) -> None:
    """AuthenticationError unless the delivery carries the workspace's secret (GitHub: an HMAC of the body)."""
    if kind == "github":
        given = headers.get("x-hub-signature-256", "")
        if not given.startswith("sha256="):
            raise AuthenticationError("the delivery is not signed: set the webhook's secret on GitHub (X-Hub-Signature-256)")
        expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise AuthenticationError("the delivery's signature does not match the workspace's webhook secret")
        return
    token = headers.get("x-gitlab-token", "")
    if not token:
        raise AuthenticationError("the delivery carries no X-Gitlab-Token: set the webhook's secret token on GitLab")
    if not hmac.compare_digest(token.encode(), secret.encode()):
        raise AuthenticationError("the delivery's X-Gitlab-Token does not match the workspace's webhook secret")


def delivery_id(kind: Kind, headers: Mapping[str, str]) -> str:
    """The forge's id of the delivery (each is acted on once); InvalidInputError without one."""
    names = ("x-github-delivery",) if kind == "github" else ("x-gitlab-event-uuid", "idempotency-key")
    for name in names:
        value = headers.get(name, "").strip()
        if value:
            if len(value) > 200 or not value.isprintable():
                raise InvalidInputError(f"the {name} header is not a delivery id")
            return value
    raise InvalidInputError(f"the delivery has no {names[0]} header, so it cannot be told apart from a replay")


def mentions(text: str, trigger: str) -> bool:
    """Whether `text` mentions the trigger as a word of its own (`@aicode`, not `@aicode-bot` or an e-mail)."""
    pattern = rf"(?<![\w@./-]){re.escape(trigger)}(?![\w-])"
    return re.search(pattern, text, flags=re.IGNORECASE) is not None


def _text(value: Any) -> str:
    return value[:_MAX_TEXT] if isinstance(value, str) else ""


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _payload(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInputError("the delivery's body is not JSON") from None
    if not isinstance(data, dict):
        raise InvalidInputError("the delivery's body is not a JSON object")
    return data


def _number(value: Any, what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise InvalidInputError(f"the delivery has no {what}")


def _github(event: str, data: dict[str, Any], delivery: str) -> ForgeComment | None:
    if event == "issue_comment":
        issue = _object(data.get("issue"))
        subject, on_pull_request = issue, "pull_request" in issue
    elif event == "pull_request_review_comment":
        subject, on_pull_request = _object(data.get("pull_request")), True
    else:
        return None
    if data.get("action") != "created":
        return None
    comment = _object(data.get("comment"))
    author = _object(comment.get("user"))
    return ForgeComment(
        kind="github", delivery_id=delivery, repo=_text(_object(data.get("repository")).get("full_name")),
        number=_number(subject.get("number"), "issue number"), on_pull_request=on_pull_request,
        title=_text(subject.get("title")), body=_text(subject.get("body")), comment=_text(comment.get("body")),
        login=_text(author.get("login")), comment_url=_text(comment.get("html_url")) or None,
    ) if author.get("type") != "Bot" else None


def _gitlab(event: str, data: dict[str, Any], delivery: str) -> ForgeComment | None:
    if data.get("object_kind") != "note":
        return None
    note = _object(data.get("object_attributes"))
    noteable = note.get("noteable_type")
    if noteable == "Issue":
        subject, on_pull_request = _object(data.get("issue")), False
    elif noteable == "MergeRequest":
        subject, on_pull_request = _object(data.get("merge_request")), True
    else:
        return None  # comments on commits and snippets start nothing
    if note.get("action") not in (None, "create"):
        return None  # an edited note is not a new request
    return ForgeComment(
        kind="gitlab", delivery_id=delivery, repo=_text(_object(data.get("project")).get("path_with_namespace")),
        number=_number(subject.get("iid"), "issue iid"), on_pull_request=on_pull_request,
        title=_text(subject.get("title")), body=_text(subject.get("description")), comment=_text(note.get("note")),
        login=_text(_object(data.get("user")).get("username")), comment_url=_text(note.get("url")) or None,
    )


def parse_comment(kind: Kind, body: bytes, headers: Mapping[str, str], delivery: str) -> ForgeComment | None:
    """The comment the delivery reports, or None for any other event (a ping, a push, an edit)."""
    data = _payload(body)
    if kind == "github":
        return _github(headers.get("x-github-event", ""), data, delivery)
    return _gitlab(headers.get("x-gitlab-event", ""), data, delivery)
