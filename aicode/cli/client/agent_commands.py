"""`aicode agents`: the agent CLIs the server can run, in which versions, and whether you have a key for each."""

from __future__ import annotations

import argparse
from typing import Any

from rich.text import Text

from aicode.cli.client.common import Context, client_command, resolve_workspace
from aicode.cli.client.errors import EXIT_OK

__all__ = ["register"]


def register(commands: Any, options: argparse.ArgumentParser) -> None:
    agents = commands.add_parser("agents", parents=[options],
                                 help="list the agents (claude, codex, gemini): version, model key, what is missing")
    agents.add_argument("-w", "--workspace",
                        help="as in this workspace: its image, and its team keys count (default: the server's image)")
    agents.set_defaults(run=_agents)


@client_command
def _agents(ctx: Context) -> int:
    workspace_id = resolve_workspace(ctx.api, ctx.args.workspace)["id"] if ctx.args.workspace else None
    # The first question about an image runs its CLIs' --version in a container: seconds, once.
    with ctx.out.live(lambda: Text("asking the server which agents its image holds …", style="dim")):
        agents: list[dict[str, Any]] = ctx.api.get("/api/agents", workspace_id=workspace_id)
    if ctx.out.json_mode:
        ctx.out.json(agents)
        return EXIT_OK
    rows = [[a["name"], a.get("version") or "-", f"{a['provider']}: {'yes' if a['credential'] else 'no'}",
             a.get("default_model") or "(the CLI's)", a.get("missing") or "-"] for a in agents]
    ctx.out.table(["NAME", "VERSION", "KEY", "DEFAULT MODEL", "MISSING"], rows,
                  styles=["bold", None, None, "dim", "yellow"])
    if any(not a["credential"] for a in agents):
        ctx.out.note("add a key in the browser: Settings → Model keys (or a workspace owner adds a team key)")
    return EXIT_OK
