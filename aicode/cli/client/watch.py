"""Watching a task live (run, reply, logs -f) and reporting how it ended."""

from __future__ import annotations

import datetime as dt
from typing import Any

from rich.text import Text

from aicode.cli.client.common import Context
from aicode.cli.client.errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK
from aicode.cli.client.event_view import EventView, format_cost, format_duration, format_tokens
from aicode.cli.client.follow import EventFollower
from aicode.cli.client.interrupt import InterruptGate
from aicode.cli.client.render import diffstat_lines
from aicode.tasks.models import TERMINAL_STATUSES, TaskStatus

__all__ = ["agent_text", "finish", "print_event", "watch"]


def print_event(ctx: Context, view: EventView, event: dict[str, Any]) -> None:
    """One event: a JSON line with --json, otherwise its rendered lines. Live-only events (no seq: text
    as it is typed, a session waiting) only move the status area; --json prints the stored events."""
    lines = view.lines(event)  # also keeps the status area's state current
    if ctx.out.json_mode:
        if "seq" in event:
            ctx.out.json(event, compact=True)
        return
    for line in lines:
        ctx.out.line(line)


def watch(ctx: Context, task: dict[str, Any], *, after: int, cancel_on_interrupt: bool) -> int:
    """Stream the task's events after `after` until it ends; the exit code says how it ended.

    Ctrl-C detaches (the task goes on) and says how to follow again; with `cancel_on_interrupt` it
    asks the server to cancel and keeps watching until the task has stopped.
    """
    view = EventView(task.get("created_at"))
    view.status = task.get("status") or view.status
    follower = EventFollower(ctx.api, task["id"], after, on_reconnect=ctx.out.note)
    shown = after  # the seq of the last event printed
    gate = InterruptGate()
    try:
        with gate.installed(), ctx.out.live(view.status_area):
            for event in follower.events():
                with gate.closed():
                    print_event(ctx, view, event)
                    shown = event.get("seq", shown)
    except KeyboardInterrupt:
        if not cancel_on_interrupt:
            ctx.out.note(f"detached: the task goes on. Follow it again with: aicode logs -f {task['id']}",
                         style="yellow")
            return EXIT_INTERRUPTED
        ctx.out.note(f"cancelling task {task['id']} …", style="yellow")
        ctx.api.post(f"/api/tasks/{task['id']}/cancel")
        return watch(ctx, task, after=shown, cancel_on_interrupt=False)
    final = follower.final_task or ctx.api.get(f"/api/tasks/{task['id']}")
    return finish(ctx, final)


def agent_text(task: dict[str, Any]) -> str:
    """The task's agent and the model it was given: "codex (gpt-6.2-sol)", or "claude" on its default."""
    agent = task.get("agent") or "claude"
    return f"{agent} ({task['model']})" if task.get("model") else agent


def _elapsed(task: dict[str, Any]) -> str | None:
    if not (task.get("started_at") and task.get("finished_at")):
        return None
    started = dt.datetime.fromisoformat(task["started_at"])
    finished = dt.datetime.fromisoformat(task["finished_at"])
    return format_duration((finished - started).total_seconds())


def _summary(ctx: Context, task: dict[str, Any]) -> None:
    if task.get("head_commit"):
        ctx.out.line(Text.assemble(("branch  ", "dim"), (task["branch"], "bold")))
        ctx.out.line(Text.assemble(("commit  ", "dim"), (task["head_commit"], "")))
        for line in diffstat_lines(ctx.api.get(f"/api/tasks/{task['id']}/files")):
            ctx.out.line(line)
    spent_in = task["input_tokens"] + task["cache_read_tokens"] + task["cache_write_tokens"]
    facts = [task["status"], agent_text(task)] + ([f"in {elapsed}"] if (elapsed := _elapsed(task)) else [])
    facts += [f"{format_tokens(spent_in)} in / {format_tokens(task['output_tokens'])} out tokens",
              format_cost(task["cost_usd"])]
    ctx.out.line(" · ".join(facts), style="dim")


def finish(ctx: Context, task: dict[str, Any]) -> int:
    """Print the ended task (JSON, or branch + commit + diffstat) and pick the exit code."""
    if ctx.out.json_mode:
        ctx.out.json(task, compact=True)
    else:
        _summary(ctx, task)
    if task["status"] == TaskStatus.SUCCEEDED:
        return EXIT_OK
    if task["status"] not in TERMINAL_STATUSES:
        return EXIT_OK  # detached on purpose (e.g. --detach): nothing has failed
    reason = f": {' '.join(str(task['error']).split())}" if task.get("error") else ""
    ctx.out.note(f"aicode: task {task['id']} {task['status']}{reason}", style="")
    return EXIT_FAILURE
