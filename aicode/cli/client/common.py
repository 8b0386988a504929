"""What every client command shares: --json/--no-color, error reporting, and name → id look-ups."""

from __future__ import annotations

import argparse
import functools
import os
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aicode.cli.client.config import ClientConfig, load_config
from aicode.cli.client.errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_USAGE, ClientError
from aicode.cli.client.http import ApiClient
from aicode.cli.client.render import Output

__all__ = ["Context", "client_command", "client_options", "resolve_task_id", "resolve_workspace"]

# A shell reports death by SIGPIPE as 128 + 13; `aicode logs ID | head` ends quietly with it.
_EXIT_BROKEN_PIPE = 141


@dataclass(slots=True)
class Context:
    args: argparse.Namespace
    out: Output
    config: ClientConfig
    api: ApiClient


def client_options() -> argparse.ArgumentParser:
    """The options every client command takes (an argparse parent parser)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parent.add_argument("--no-color", action="store_true", help="no colours (NO_COLOR is honoured too)")
    return parent


def _tolerant_streams() -> None:
    # A terminal that cannot show a glyph gets a '?', never a UnicodeEncodeError.
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="replace")


def client_command(body: Callable[[Context], int]) -> Callable[[argparse.Namespace], int]:
    """Wrap a command: build its context, and turn every expected failure into one line on stderr."""

    @functools.wraps(body)
    def run(args: argparse.Namespace) -> int:
        _tolerant_streams()
        out = Output(json_mode=args.json, color=not args.no_color)
        try:
            config = load_config()
            with ApiClient(config.server, config.token) as api:
                return body(Context(args, out, config, api))
        except ClientError as exc:
            print(f"aicode: {' '.join(exc.message.split())}", file=sys.stderr, flush=True)
            return exc.exit_code
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED
        except BrokenPipeError:
            # Point stdout at nothing so that the interpreter's final flush does not fail again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return _EXIT_BROKEN_PIPE

    return run


def resolve_workspace(api: ApiClient, name: str) -> dict[str, Any]:
    """The workspace called `name` (or with that id); shared workspaces may share a name: then the id."""
    workspaces = api.get("/api/workspaces")
    found: list[dict[str, Any]] = [w for w in workspaces if name in (w["name"], w["id"])]
    if len(found) == 1:
        return found[0]
    if found:
        ids = ", ".join(w["id"] for w in found)
        raise ClientError(f"several workspaces you can see are named {name!r}: give one's id ({ids})", EXIT_USAGE)
    known = ", ".join(sorted(w["name"] for w in workspaces)) or "none yet"
    raise ClientError(f"no workspace named {name!r} (yours: {known}) — see aicode workspace list, "
                      "or add one with aicode workspace add NAME REPO", EXIT_USAGE)


def resolve_task_id(api: ApiClient, ref: str) -> str:
    """A full task id from an id or a unique prefix of one (as `aicode tasks` shows)."""
    try:
        return str(uuid.UUID(ref))
    except ValueError:
        pass
    prefix = ref.lower()
    if len(prefix) < 4 or any(c not in "0123456789abcdef-" for c in prefix):
        raise ClientError(f"{ref!r} is not a task id (give the id, or at least 4 of its first characters)",
                          EXIT_USAGE)
    matches: list[str] = [task["id"] for task in api.get("/api/tasks", limit=500) if task["id"].startswith(prefix)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise ClientError(f"no task with an id starting with {ref!r} among your latest 500 — see aicode tasks",
                          EXIT_FAILURE)
    raise ClientError(f"{ref!r} matches {len(matches)} tasks: give more of the id", EXIT_USAGE)
