"""`aicode comment` (write a review comment on a task's diff, or send the open ones) and `aicode comments`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from aicode.cli.client.common import Context, client_command, resolve_task_id
from aicode.cli.client.errors import EXIT_OK, EXIT_USAGE, ClientError

__all__ = ["parse_location", "register"]


def register(commands: Any, options: argparse.ArgumentParser) -> None:
    comment = commands.add_parser(
        "comment", parents=[options],
        help="comment on a line of a task's diff (--send: send the open comments to the agent as one follow-up)")
    comment.add_argument("task_id", metavar="ID")
    comment.add_argument("location", metavar="PATH:LINE", nargs="?",
                         help="a changed file and a line number in the task's version of it")
    comment.add_argument("text", nargs="?", help="the comment ('-' reads it from standard input)")
    comment.add_argument("--old", action="store_true",
                         help="LINE is in the version before the task's changes (the diff's left side)")
    comment.add_argument("--send", action="store_true",
                         help="send the open comments to the agent as one follow-up prompt")
    comment.set_defaults(run=_comment)

    comments = commands.add_parser("comments", parents=[options], help="list a task's review comments")
    comments.add_argument("task_id", metavar="ID")
    comments.set_defaults(run=_comments)


def parse_location(location: str) -> tuple[str, int]:
    """PATH:LINE → (path, line); a usage error says what is expected."""
    path, _, line = location.rpartition(":")
    if not path or not line.isdigit() or int(line) < 1:
        raise ClientError(f"{location!r} is not PATH:LINE (a changed file and a line number from 1, "
                          "e.g. src/app.py:12)", EXIT_USAGE)
    return path, int(line)


@client_command
def _comment(ctx: Context) -> int:
    args = ctx.args
    if args.send:
        if args.location or args.text or args.old:
            raise ClientError("--send sends the comments already written: give only the task id", EXIT_USAGE)
        return _send(ctx, resolve_task_id(ctx.api, args.task_id))
    if not (args.location and args.text):
        raise ClientError('give PATH:LINE and the comment (aicode comment ID src/app.py:12 "text"), '
                          "or --send to send the open comments", EXIT_USAGE)
    path, line = parse_location(args.location)
    body = sys.stdin.read() if args.text == "-" else args.text
    if not body.strip():
        raise ClientError("the comment is empty", EXIT_USAGE)
    task_id = resolve_task_id(ctx.api, args.task_id)
    made = ctx.api.post(f"/api/tasks/{task_id}/comments",
                        {"path": path, "line": line, "side": "old" if args.old else "new", "body": body})
    if ctx.out.json_mode:
        ctx.out.json(made)
    else:
        ctx.out.line(f"comment {made['id']} on {_where(made)}; send the open comments with "
                     f"aicode comment {task_id} --send")
    return EXIT_OK


def _send(ctx: Context, task_id: str) -> int:
    open_count = sum(1 for c in ctx.api.get(f"/api/tasks/{task_id}/comments") if c["sent_at"] is None)
    task = ctx.api.post(f"/api/tasks/{task_id}/comments/send")
    if ctx.out.json_mode:
        ctx.out.json(task)
    else:
        noun = "comment" if open_count == 1 else "comments"
        ctx.out.line(f"sent {open_count} {noun} to task {task_id} as a follow-up "
                     f"(follow it with aicode logs -f {task_id})")
    return EXIT_OK


def _where(comment: dict[str, Any]) -> str:
    return f"{comment['path']}:{comment['line']}" + (" (old)" if comment["side"] == "old" else "")


@client_command
def _comments(ctx: Context) -> int:
    task_id = resolve_task_id(ctx.api, ctx.args.task_id)
    comments = ctx.api.get(f"/api/tasks/{task_id}/comments")
    if ctx.out.json_mode:
        ctx.out.json(comments)
        return EXIT_OK
    if not comments:
        ctx.out.note(f'task {task_id} has no comments: write one with aicode comment {task_id} PATH:LINE "text"')
        return EXIT_OK
    rows = [[str(c["id"]), _where(c), c["author"], "sent" if c["sent_at"] else "open", " ".join(c["body"].split())]
            for c in comments]
    ctx.out.table(["ID", "WHERE", "AUTHOR", "STATE", "COMMENT"], rows, styles=["dim", None, None, "bold", None])
    return EXIT_OK
