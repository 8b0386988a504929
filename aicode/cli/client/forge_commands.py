"""`aicode push`, `aicode pr` and `aicode rebase`: a task's work published on the workspace's forge."""

from __future__ import annotations

import argparse
from typing import Any

from aicode.cli.client.common import Context, client_command, resolve_task_id
from aicode.cli.client.errors import EXIT_OK

__all__ = ["register"]


def register(commands: Any, options: argparse.ArgumentParser) -> None:
    push = commands.add_parser("push", parents=[options],
                               help="push a task's branch aicode/<id> to the workspace's remote")
    push.add_argument("task_id", metavar="ID")
    push.set_defaults(run=_push)
    pr = commands.add_parser("pr", parents=[options],
                             help="push a task's branch and open its pull request (GitLab: merge request)")
    pr.add_argument("task_id", metavar="ID")
    pr.add_argument("--draft", action="store_true", default=None, help="open it as a draft")
    pr.add_argument("--ready", dest="draft", action="store_false", help="open it ready for review")
    pr.add_argument("--title", help="the title (default: the prompt's first line)")
    pr.add_argument("--body", help="the description (default: what was asked, the summary, files and cost)")
    pr.set_defaults(run=_pull_request)
    rebase = commands.add_parser("rebase", parents=[options],
                                 help="move a task's commits onto the latest base branch (pushed again if pushed)")
    rebase.add_argument("task_id", metavar="ID")
    rebase.set_defaults(run=_rebase)


@client_command
def _push(ctx: Context) -> int:
    task_id = resolve_task_id(ctx.api, ctx.args.task_id)
    pushed = ctx.api.post(f"/api/tasks/{task_id}/push")
    if ctx.out.json_mode:
        ctx.out.json(pushed)
    else:
        if pushed.get("up_to_date"):
            ctx.out.line(f"{pushed['remote_branch']} is at {pushed['commit'][:12]} already: nothing to push")
        else:
            how = "created" if pushed.get("created") else "replaced" if pushed.get("forced") else "updated"
            ctx.out.line(f"pushed {pushed['commit'][:12]} to {pushed['remote_branch']} ({how})")
    return EXIT_OK


@client_command
def _pull_request(ctx: Context) -> int:
    task_id = resolve_task_id(ctx.api, ctx.args.task_id)
    body = {key: value for key in ("draft", "title", "body") if (value := getattr(ctx.args, key)) is not None}
    pull = ctx.api.post(f"/api/tasks/{task_id}/pull-request", body)
    if ctx.out.json_mode:
        ctx.out.json(pull)
    else:
        said = "already open" if pull.get("reused") else "opened"
        ctx.out.line(f"#{pull['number']} {said} ({pull['state']}): {pull['url']}")
    return EXIT_OK


@client_command
def _rebase(ctx: Context) -> int:
    task_id = resolve_task_id(ctx.api, ctx.args.task_id)
    done = ctx.api.post(f"/api/tasks/{task_id}/rebase")
    if ctx.out.json_mode:
        ctx.out.json(done)
    elif not done["rebased"]:
        ctx.out.line(f"task {task_id} is on the latest base branch already ({done['onto'][:12]})")
    else:
        ctx.out.line(f"rebased {done['replayed']} commit{'' if done['replayed'] == 1 else 's'} onto "
                     f"{done['onto'][:12]}" + (f"; pushed {done['pushed']['commit'][:12]}" if done.get("pushed") else ""))
    return EXIT_OK
