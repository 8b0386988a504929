"""The bodies a webhook receives: Slack-compatible incoming-webhook JSON, or aicode's own event JSON."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aicode.tasks.models import TaskRecord

__all__ = ["TaskNotice", "json_body", "sent_now", "slack_body", "test_body"]

_HEADLINES = {"succeeded": (":white_check_mark:", "succeeded"), "failed": (":x:", "failed"),
              "waiting": (":hourglass:", "waits for your next prompt")}
_PROMPT_SHOWN = 200


@dataclass(frozen=True, slots=True)
class TaskNotice:
    """One event of one task, with what a message names besides the task: its workspace, who asked, its page."""

    event: str  # succeeded, failed or waiting
    task: TaskRecord
    workspace: str
    started_by: str | None
    turn_by: str | None
    url: str


def _first_line(prompt: str) -> str:
    line = next((part.strip() for part in prompt.splitlines() if part.strip()), "(no prompt)")
    return line if len(line) <= _PROMPT_SHOWN else line[: _PROMPT_SHOWN - 1] + "…"


def _escaped(text: str) -> str:
    """Slack's mrkdwn gives &, < and > a meaning: a prompt must show as typed, not become a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_body(notice: TaskNotice) -> dict[str, Any]:
    """`text` alone is what Slack-compatible receivers (Mattermost, Rocket.Chat, Teams' Slack hooks) all read;
    `blocks` is Slack's richer layout of the same."""
    icon, happened = _HEADLINES[notice.event]
    task = notice.task
    who = notice.turn_by or notice.started_by or "someone"
    headline = f"{icon} Task {happened}: {_escaped(_first_line(task.prompt))}"
    details = f"Workspace *{_escaped(notice.workspace)}* · {_escaped(who)} · {task.agent} · ${task.cost_usd:.2f}"
    lines = [headline, details]
    if notice.event == "failed" and task.error:
        lines.append(f"> {_escaped(_first_line(task.error))}")
    lines.append(f"<{notice.url}|Open the task>")
    text = "\n".join(lines)
    return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}


def json_body(notice: TaskNotice) -> dict[str, Any]:
    """`{event, task, sent_at}`; `sent_at` is filled in as each attempt is sent (`sent_now`)."""
    task = notice.task
    return {
        "event": f"task.{notice.event}",
        "task": {
            "id": str(task.id), "workspace_id": str(task.workspace_id), "workspace": notice.workspace,
            "kind": task.kind, "status": task.status.value, "prompt": task.prompt, "url": notice.url,
            "agent": task.agent, "model": task.model, "branch": task.branch, "head_commit": task.head_commit,
            "cost_usd": task.cost_usd, "turns": task.turns, "error": task.error, "user": notice.started_by,
            "turn_user": notice.turn_by,
            "finished_at": task.finished_at.isoformat() if task.finished_at else None,
        },
        "sent_at": None,
    }


def test_body(format_: str, site_url: str, by: str) -> dict[str, Any]:
    """A message that only shows the webhook works."""
    text = f"aicode test notification from {site_url}, sent by {by}: this webhook works."
    if format_ == "slack":
        return {"text": _escaped(text)}
    return {"event": "test", "task": None, "message": text, "sent_at": None}


def sent_now(body: dict[str, Any]) -> dict[str, Any]:
    """The body as sent now: aicode's JSON form says when (a retry is sent later than the event happened)."""
    if "sent_at" not in body:
        return body
    return {**body, "sent_at": datetime.now(UTC).isoformat()}
