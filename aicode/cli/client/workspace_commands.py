"""`aicode workspace add | list | sync | members | share | unshare`."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from rich.text import Text

from aicode.cli.client.common import Context, client_command, resolve_workspace
from aicode.cli.client.errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, ClientError

__all__ = ["register"]

_POLL_S = 0.3


def register(commands: Any, options: argparse.ArgumentParser) -> None:
    workspace = commands.add_parser("workspace", help="register and list repositories")
    actions = workspace.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", parents=[options], help="register a repository and wait for its clone")
    add.add_argument("name")
    add.add_argument("repo", help="https URL, ssh URL, or a path the server allows (AICODE_LOCAL_REPO_ROOTS)")
    add.add_argument("--branch", help="default base branch (default: the repository's HEAD)")
    add.add_argument("--token-stdin", action="store_true",
                     help="read an access token for the repository from standard input (kept encrypted)")
    add.add_argument("--no-wait", action="store_true", help="return while the server is still cloning")
    add.set_defaults(run=_add)
    listing = actions.add_parser("list", parents=[options], help="your workspaces")
    listing.set_defaults(run=_list)
    sync = actions.add_parser("sync", parents=[options], help="fetch new commits from the remote now")
    sync.add_argument("name")
    sync.set_defaults(run=_sync)
    members = actions.add_parser("members", parents=[options], help="who belongs to a workspace, with which role")
    members.add_argument("name")
    members.set_defaults(run=_members)
    share = actions.add_parser("share", parents=[options], help="add a member, or change a member's role (owners)")
    share.add_argument("name", help="the workspace")
    share.add_argument("user", help="the username to share it with")
    share.add_argument("--role", choices=("viewer", "editor", "owner"), default="editor",
                       help="viewer: sees; editor: also runs tasks; owner: also manages (default: editor)")
    share.set_defaults(run=_share)
    unshare = actions.add_parser("unshare", parents=[options], help="remove a member (owners; or leave yourself)")
    unshare.add_argument("name", help="the workspace")
    unshare.add_argument("user")
    unshare.set_defaults(run=_unshare)


def _repo_url(repo: str) -> str:
    # A relative path means nothing to the server: make it absolute (the server checks it is allowed).
    if "://" not in repo and not repo.startswith("/") and ":" not in repo.split("/")[0] and Path(repo).exists():
        return str(Path(repo).resolve())
    return repo


def _wait_for_clone(ctx: Context, workspace: dict[str, Any]) -> dict[str, Any]:
    def status() -> Text:
        return Text(f"cloning {workspace['repo_url']} …", style="dim")

    with ctx.out.live(status):
        while workspace["status"] == "cloning":
            time.sleep(_POLL_S)
            workspace = ctx.api.get(f"/api/workspaces/{workspace['id']}")
    return workspace


def _show(ctx: Context, workspace: dict[str, Any], verb: str) -> int:
    if ctx.out.json_mode:
        ctx.out.json(workspace)
    if workspace["status"] == "error":
        raise ClientError(f"workspace {workspace['name']}: {workspace.get('error') or 'the clone failed'}",
                          EXIT_FAILURE)
    if not ctx.out.json_mode:
        branch = f" (default branch {workspace['default_branch']})" if workspace.get("default_branch") else ""
        ctx.out.line(f"workspace {workspace['name']} {verb}: {workspace['status']}{branch}")
    return EXIT_OK


@client_command
def _add(ctx: Context) -> int:
    args = ctx.args
    body: dict[str, Any] = {"name": args.name, "repo_url": _repo_url(args.repo)}
    if args.branch:
        body["default_branch"] = args.branch
    if args.token_stdin:
        token = sys.stdin.readline().strip()
        if not token:
            raise ClientError("--token-stdin: standard input had no token", EXIT_USAGE)
        body["repo_token"] = token
    workspace = ctx.api.post("/api/workspaces", body)
    if not args.no_wait:
        try:
            workspace = _wait_for_clone(ctx, workspace)
        except KeyboardInterrupt:
            ctx.out.note("stopped waiting: the server goes on cloning (see aicode workspace list)", style="yellow")
            return EXIT_INTERRUPTED
    return _show(ctx, workspace, "added")


@client_command
def _list(ctx: Context) -> int:
    workspaces = ctx.api.get("/api/workspaces")
    if ctx.out.json_mode:
        ctx.out.json(workspaces)
        return EXIT_OK
    if not workspaces:
        ctx.out.note("no workspaces yet: add one with aicode workspace add NAME REPO")
        return EXIT_OK
    rows = [[w["name"], w.get("role") or "admin", w["status"], w.get("default_branch") or "-", w["repo_url"],
             (w.get("last_synced_at") or "-")[:19].replace("T", " ")] for w in workspaces]
    ctx.out.table(["NAME", "ROLE", "STATUS", "BRANCH", "REPOSITORY", "SYNCED (UTC)"], rows,
                  styles=["bold", None, None, None, "dim", "dim"])
    return EXIT_OK


@client_command
def _sync(ctx: Context) -> int:
    workspace = resolve_workspace(ctx.api, ctx.args.name)
    return _show(ctx, ctx.api.post(f"/api/workspaces/{workspace['id']}/sync"), "synced")


@client_command
def _members(ctx: Context) -> int:
    workspace = resolve_workspace(ctx.api, ctx.args.name)
    members = ctx.api.get(f"/api/workspaces/{workspace['id']}/members")
    if ctx.out.json_mode:
        ctx.out.json(members)
        return EXIT_OK
    ctx.out.table(["USER", "ROLE"], [[m["username"], m["role"]] for m in members], styles=["bold", None])
    return EXIT_OK


@client_command
def _share(ctx: Context) -> int:
    workspace = resolve_workspace(ctx.api, ctx.args.name)
    member = ctx.api.put(f"/api/workspaces/{workspace['id']}/members/{ctx.args.user}", {"role": ctx.args.role})
    if ctx.out.json_mode:
        ctx.out.json(member)
    else:
        ctx.out.line(f"{member['username']} is {member['role']} in {workspace['name']}")
    return EXIT_OK


@client_command
def _unshare(ctx: Context) -> int:
    workspace = resolve_workspace(ctx.api, ctx.args.name)
    ctx.api.delete(f"/api/workspaces/{workspace['id']}/members/{ctx.args.user}")
    if ctx.out.json_mode:
        ctx.out.json({"workspace": workspace["name"], "removed": ctx.args.user})
    else:
        ctx.out.line(f"{ctx.args.user} removed from {workspace['name']}")
    return EXIT_OK
