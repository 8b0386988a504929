"""`aicode chat`: start a live session (or attach to one again) and talk to its agent prompt by prompt."""

from __future__ import annotations

import argparse
from typing import Any, get_args

from aicode.cli.client.chat import Conversation, PromptReader, turn_running
from aicode.cli.client.common import Context, client_command, resolve_task_id, resolve_workspace
from aicode.cli.client.errors import EXIT_USAGE, ClientError
from aicode.cli.client.watch import agent_text
from aicode.tasks.models import TERMINAL_STATUSES
from aicode.tasks.schemas import AgentName

__all__ = ["register"]

# What a page of the session's latest events holds, to tell whether a turn runs when attaching.
_RECENT_EVENTS = 200


def register(commands: Any, options: argparse.ArgumentParser) -> None:
    chat = commands.add_parser("chat", parents=[options],
                               help="talk to an agent in a live session: one prompt after another, one process")
    target = chat.add_mutually_exclusive_group(required=True)
    target.add_argument("-w", "--workspace", help="start a new session in this workspace")
    target.add_argument("--session", metavar="ID",
                        help="attach to a session again (one that has ended starts again with your next prompt)")
    chat.add_argument("--agent", choices=get_args(AgentName),
                      help="the agent CLI of a new session (default: the server's, claude); see aicode agents")
    chat.add_argument("--model", help="model for a new session's agent (default: the agent's)")
    chat.add_argument("--base-branch", help="branch a new session starts from (default: the workspace's)")
    chat.set_defaults(run=_chat)


@client_command
def _chat(ctx: Context) -> int:
    args = ctx.args
    prompts = PromptReader()
    if args.session:
        if args.agent or args.model or args.base_branch:
            raise ClientError("--agent, --model and --base-branch are for a new session (-w): an existing one "
                              "keeps its own", EXIT_USAGE)
        conversation = _attach(ctx, resolve_task_id(ctx.api, args.session), prompts)
    else:
        conversation = _start(ctx, prompts)
    if prompts.interactive and not ctx.out.json_mode:
        ctx.out.note("Enter sends a prompt (one sent while the agent works waits its turn). Ctrl-C interrupts "
                     "the agent's turn; Ctrl-D, or Ctrl-C at the prompt, ends the session.")
    return conversation.run()


def _start(ctx: Context, prompts: PromptReader) -> Conversation:
    args = ctx.args
    workspace = resolve_workspace(ctx.api, args.workspace)
    body = {"agent": args.agent, "model": args.model, "base_branch": args.base_branch}
    task = ctx.api.post(f"/api/workspaces/{workspace['id']}/sessions",
                        {k: v for k, v in body.items() if v is not None})
    if not ctx.out.json_mode:
        ctx.out.line(f"session on {workspace['name']}: {task['id']} · {agent_text(task)} · branch {task['branch']}",
                     style="bold")
    # It waits for its first prompt: the prompt comes at once (sent before the agent is up, it waits for it).
    return Conversation(ctx, task, prompts, after=0, busy=False)


def _attach(ctx: Context, task_id: str, prompts: PromptReader) -> Conversation:
    task = ctx.api.get(f"/api/tasks/{task_id}")
    if task.get("kind") != "session":
        raise ClientError(f"task {task_id} is not a live session: follow it with aicode logs -f {task_id}, or "
                          f"continue it with aicode reply {task_id} PROMPT")
    busy = False
    if not ctx.out.json_mode:
        ctx.out.line(f"session {task['id']} · {agent_text(task)} · branch {task['branch']} · {task['status']}",
                     style="bold")
    if task["status"] in TERMINAL_STATUSES:
        ctx.out.note("this session has ended: your next prompt starts it again where it left off")
    else:
        recent = ctx.api.get(f"/api/tasks/{task_id}/events", last=_RECENT_EVENTS)
        busy = turn_running(recent, bool(task["prompt"].strip()))
        if busy:
            ctx.out.note("a turn is running: its events follow, and the prompt comes back when it ends")
    return Conversation(ctx, task, prompts, after=task["last_seq"], busy=busy)
