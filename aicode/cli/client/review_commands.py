"""`aicode diff` (coloured and paged on a terminal) and `aicode pull` (the task's commits, locally)."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from aicode.cli.client.common import Context, client_command, resolve_task_id
from aicode.cli.client.errors import EXIT_FAILURE, EXIT_OK, ClientError

__all__ = ["register"]

# Raw escape codes rather than rich: the text goes through a pager, which shows them as they are.
_DIFF_COLOURS = (("diff --git", "\x1b[1m"), ("index ", "\x1b[1m"), ("--- ", "\x1b[1m"), ("+++ ", "\x1b[1m"),
                 ("@@", "\x1b[36m"), ("+", "\x1b[32m"), ("-", "\x1b[31m"))


def register(commands: Any, options: argparse.ArgumentParser) -> None:
    diff = commands.add_parser("diff", parents=[options], help="show a task's changes as a patch")
    diff.add_argument("task_id", metavar="ID")
    diff.add_argument("--no-pager", action="store_true", help="print straight to the terminal")
    diff.add_argument("--turn", type=int, metavar="N",
                      help="only what turn N changed (1: the first prompt's; turns that committed are counted)")
    diff.set_defaults(run=_diff)
    pull = commands.add_parser("pull", parents=[options],
                               help="apply a task's commits onto a local branch aicode/<id> in this git repository")
    pull.add_argument("task_id", metavar="ID")
    pull.add_argument("--force", action="store_true", help="replace the local branch if it exists")
    pull.set_defaults(run=_pull)


def _colour(patch: str) -> str:
    lines = []
    for line in patch.splitlines():
        code = next((c for prefix, c in _DIFF_COLOURS if line.startswith(prefix)), None)
        lines.append(f"{code}{line}\x1b[0m" if code else line)
    return "\n".join(lines) + "\n"


def _page(text: str) -> None:
    """Through $PAGER (default `less`; LESS=FRX, as git sets it: short diffs print and return)."""
    command = shlex.split(os.environ.get("PAGER") or "less")
    if not command or command[0] == "cat" or shutil.which(command[0]) is None:
        sys.stdout.write(text)
        return
    env = {**os.environ, "LESS": os.environ.get("LESS", "FRX")}
    pager = subprocess.Popen(command, stdin=subprocess.PIPE, env=env, text=True, errors="replace")
    try:
        assert pager.stdin is not None
        pager.stdin.write(text)
        pager.stdin.close()
    except BrokenPipeError:
        pass  # the reader quit the pager early
    pager.wait()


@client_command
def _diff(ctx: Context) -> int:
    task_id = resolve_task_id(ctx.api, ctx.args.task_id)
    turn = ctx.args.turn
    patch = ctx.api.get_text(f"/api/tasks/{task_id}/diff", turn=turn)
    if ctx.out.json_mode:
        files = ctx.api.get(f"/api/tasks/{task_id}/files", turn=turn)
        ctx.out.json({"task_id": task_id, "turn": ctx.args.turn, "files": files, "diff": patch})
        return EXIT_OK
    if not patch:
        ctx.out.note(f"task {task_id} has changed no files (yet)" if turn is None else
                     f"turn {ctx.args.turn} of task {task_id} changed no files")
        return EXIT_OK
    if not ctx.out.is_terminal:
        sys.stdout.write(patch)
        return EXIT_OK
    shown = _colour(patch) if ctx.out.styled else patch
    if ctx.args.no_pager:
        sys.stdout.write(shown)
    else:
        _page(shown)
    return EXIT_OK


def _git(cwd: Path | str, *args: str, stdin: str | None = None, check: bool = True
         ) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(["git", *args], cwd=cwd, input=stdin, capture_output=True, text=True)
    except FileNotFoundError:
        raise ClientError("git is not installed (or not on PATH): aicode pull needs it") from None
    if check and result.returncode != 0:
        message = (result.stderr or result.stdout).strip().splitlines()
        raise ClientError(f"git {args[0]} failed: {message[0] if message else f'exit code {result.returncode}'}")
    return result


def _repository_root() -> Path:
    result = _git(".", "rev-parse", "--show-toplevel", check=False)
    if result.returncode != 0:
        raise ClientError("not inside a git repository: run aicode pull in a clone of the workspace's repository")
    return Path(result.stdout.strip())


def _apply(root: Path, base: str, mbox: str) -> str:
    """Apply the series onto `base` in a throw-away worktree (the user's checkout is never touched);
    returns the new head commit."""
    scratch = Path(tempfile.mkdtemp(prefix="aicode-pull-"))
    try:
        _git(root, "worktree", "add", "--detach", "--quiet", str(scratch), base)
        # --keep-non-patch: strip only "[PATCH n/m]", so a "[partial] ..." title stays as it was.
        applied = _git(scratch, "am", "--keep-non-patch", "--quiet", stdin=mbox, check=False)
        if applied.returncode != 0:
            _git(scratch, "am", "--abort", check=False)
            reason = (applied.stderr or applied.stdout).strip().splitlines()
            raise ClientError(f"git am could not apply the task's patches: {reason[0] if reason else 'unknown error'}")
        return _git(scratch, "rev-parse", "HEAD").stdout.strip()
    finally:
        _git(root, "worktree", "remove", "--force", str(scratch), check=False)
        shutil.rmtree(scratch, ignore_errors=True)
        _git(root, "worktree", "prune", check=False)


@client_command
def _pull(ctx: Context) -> int:
    task_id = resolve_task_id(ctx.api, ctx.args.task_id)
    task = ctx.api.get(f"/api/tasks/{task_id}")
    base, branch = task.get("base_commit"), task["branch"]
    if not (base and task.get("head_commit")):
        raise ClientError(f"task {task_id} has no commits to pull (it has changed no files yet)")
    root = _repository_root()
    if _git(root, "cat-file", "-e", f"{base}^{{commit}}", check=False).returncode != 0:
        raise ClientError(f"the task's base commit {base[:12]} is not in this repository — is it a clone of the "
                          f"workspace's repository? fetch its branch first (git fetch origin {task['base_branch']})")
    exists = _git(root, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False).returncode == 0
    if exists and not ctx.args.force:
        raise ClientError(f"branch {branch} already exists here: pass --force to replace it "
                          f"(or delete it: git branch -D {branch})", EXIT_FAILURE)
    if _git(root, "var", "GIT_COMMITTER_IDENT", check=False).returncode != 0:
        raise ClientError("git does not know who you are, and git am records you as the committer: run "
                          "git config --global user.name 'Your Name' and git config --global user.email you@example.com")
    head = _apply(root, base, ctx.api.get_text(f"/api/tasks/{task_id}/patch"))
    _git(root, "branch", *(["--force"] if exists else []), branch, head)
    count = int(_git(root, "rev-list", "--count", f"{base}..{head}").stdout.strip())
    if ctx.out.json_mode:
        ctx.out.json({"task_id": task_id, "branch": branch, "base_commit": base, "head": head, "commits": count})
    else:
        ctx.out.line(f"branch {branch}: {count} commit{'' if count == 1 else 's'} from task {task_id} "
                     f"on {base[:12]} (git switch {branch})")
    return EXIT_OK
