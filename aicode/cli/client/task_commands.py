"""`aicode run`, `reply`, `logs`, `tasks` and `cancel`."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Any, get_args

from aicode.cli.client.common import Context, client_command, resolve_task_id, resolve_workspace
from aicode.cli.client.errors import EXIT_OK, EXIT_USAGE, ClientError
from aicode.cli.client.event_view import EventView, format_cost
from aicode.cli.client.follow import replay_events
from aicode.cli.client.watch import agent_text, print_event, watch
from aicode.tasks.models import STATUSES, TaskStatus
from aicode.tasks.schemas import AgentName

__all__ = ["register"]


def register(commands: Any, options: argparse.ArgumentParser) -> None:
    run = commands.add_parser("run", parents=[options], help="run a task and watch it live")
    run.add_argument("-w", "--workspace", required=True, help="workspace name")
    run.add_argument("prompt", help="what the agent should do ('-' reads it from standard input)")
    run.add_argument("--agent", choices=get_args(AgentName),
                     help="the agent CLI to run: Claude Code, OpenAI Codex or Google Gemini CLI (default: the "
                          "server's, claude); see aicode agents")
    run.add_argument("--model", help="model for the agent (default: the agent's)")
    run.add_argument("--max-turns", type=int, help="most agent turns")
    run.add_argument("--base-branch", help="branch to start from (default: the workspace's)")
    _watch_options(run)
    run.set_defaults(run=_run)

    reply = commands.add_parser("reply", parents=[options], help="send a follow-up prompt to a task and watch it")
    reply.add_argument("task_id", metavar="ID")
    reply.add_argument("prompt", help="the follow-up ('-' reads it from standard input)")
    _watch_options(reply)
    reply.set_defaults(run=_reply)

    logs = commands.add_parser("logs", parents=[options], help="print a task's events (-f: then follow it)")
    logs.add_argument("task_id", metavar="ID")
    logs.add_argument("-f", "--follow", action="store_true", help="keep following until the task ends")
    logs.add_argument("--after", type=int, default=0, metavar="SEQ", help="only events after this seq")
    logs.set_defaults(run=_logs)

    tasks = commands.add_parser("tasks", parents=[options], help="list tasks, newest first")
    tasks.add_argument("-w", "--workspace", help="only this workspace's")
    tasks.add_argument("--status", choices=STATUSES)
    tasks.add_argument("--limit", type=int, default=20, help="how many (default 20, at most 500)")
    tasks.set_defaults(run=_tasks)

    cancel = commands.add_parser("cancel", parents=[options], help="cancel a queued or running task")
    cancel.add_argument("task_id", metavar="ID")
    cancel.set_defaults(run=_cancel)


def _watch_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--detach", action="store_true", help="print the task id and return at once")
    parser.add_argument("--cancel-on-interrupt", action="store_true",
                        help="Ctrl-C cancels the task (default: Ctrl-C stops watching, the task goes on)")


def _prompt(text: str) -> str:
    prompt = sys.stdin.read() if text == "-" else text
    if not prompt.strip():
        raise ClientError("the prompt is empty", EXIT_USAGE)
    return prompt


def _started(ctx: Context, task: dict[str, Any], after: int, what: str) -> int:
    """After submitting: print the id and return (--detach), or watch the task to its end."""
    if ctx.args.detach:
        if ctx.out.json_mode:
            ctx.out.json(task)
        else:
            ctx.out.line(task["id"])
        return EXIT_OK
    if not ctx.out.json_mode:
        ctx.out.line(f"{what} {task['id']} · {agent_text(task)} · branch {task['branch']}", style="bold")
    return watch(ctx, task, after=after, cancel_on_interrupt=ctx.args.cancel_on_interrupt)


@client_command
def _run(ctx: Context) -> int:
    args = ctx.args
    prompt = _prompt(args.prompt)
    workspace = resolve_workspace(ctx.api, args.workspace)
    body = {"prompt": prompt, "agent": args.agent, "model": args.model, "max_turns": args.max_turns,
            "base_branch": args.base_branch}
    task = ctx.api.post(f"/api/workspaces/{workspace['id']}/tasks", {k: v for k, v in body.items() if v is not None})
    return _started(ctx, task, 0, f"task on {workspace['name']}:")


@client_command
def _reply(ctx: Context) -> int:
    task_id = resolve_task_id(ctx.api, ctx.args.task_id)
    prompt = _prompt(ctx.args.prompt)
    # Events of the new turn come after those stored now; the answer itself is the queued task.
    before = ctx.api.get(f"/api/tasks/{task_id}")["last_seq"]
    task = ctx.api.post(f"/api/tasks/{task_id}/messages", {"prompt": prompt})
    return _started(ctx, task, before, "follow-up on task")


@client_command
def _logs(ctx: Context) -> int:
    task_id = resolve_task_id(ctx.api, ctx.args.task_id)
    task = ctx.api.get(f"/api/tasks/{task_id}")
    if ctx.args.follow:
        return watch(ctx, task, after=ctx.args.after, cancel_on_interrupt=False)
    view = EventView(task.get("created_at"))
    for event in replay_events(ctx.api, task_id, ctx.args.after):
        print_event(ctx, view, event)
    if ctx.out.json_mode:
        ctx.out.json(ctx.api.get(f"/api/tasks/{task_id}"), compact=True)
    return EXIT_OK


def _age(created_at: str) -> str:
    seconds = (dt.datetime.now(dt.timezone.utc) - dt.datetime.fromisoformat(created_at)).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return "just now"


def _prompt_cell(task: dict[str, Any]) -> str:
    prompt = " ".join(task["prompt"].split())[:200]
    return prompt or ("(live session)" if task.get("kind") == "session" else "")


@client_command
def _tasks(ctx: Context) -> int:
    args = ctx.args
    workspaces = {w["id"]: w["name"] for w in ctx.api.get("/api/workspaces")}
    workspace_id = resolve_workspace(ctx.api, args.workspace)["id"] if args.workspace else None
    tasks = ctx.api.get("/api/tasks", workspace_id=workspace_id, status=args.status, limit=max(1, min(args.limit, 500)))
    if ctx.out.json_mode:
        ctx.out.json(tasks)
        return EXIT_OK
    rows = [[t["id"], t["status"], workspaces.get(t["workspace_id"], t["workspace_id"][:8]), t.get("agent") or "-",
             _age(t["created_at"]), format_cost(t["cost_usd"]), _prompt_cell(t)] for t in tasks]
    if not rows:
        ctx.out.note("no tasks yet: start one with aicode run -w WORKSPACE \"prompt\"")
        return EXIT_OK
    ctx.out.table(["ID", "STATUS", "WORKSPACE", "AGENT", "CREATED", "COST", "PROMPT"], rows,
                  styles=["dim", "bold", None, None, "dim", "dim", None])
    return EXIT_OK


@client_command
def _cancel(ctx: Context) -> int:
    task_id = resolve_task_id(ctx.api, ctx.args.task_id)
    task = ctx.api.post(f"/api/tasks/{task_id}/cancel")
    if ctx.out.json_mode:
        ctx.out.json(task)
    elif task["status"] == TaskStatus.CANCELLED:
        ctx.out.line(f"task {task_id} cancelled")
    else:
        ctx.out.line(f"cancel requested: task {task_id} stops within seconds (follow with aicode logs -f {task_id})")
    return EXIT_OK
