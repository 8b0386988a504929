"""`aicode image status` / `aicode image build`: the server's default workspace image, and building it (admins)."""

from __future__ import annotations

import argparse
import time
from typing import Any

from aicode.cli.client.common import Context, client_command
from aicode.cli.client.errors import EXIT_FAILURE, EXIT_OK

__all__ = ["register"]

_POLL_S = 1.0


def register(commands: Any, options: argparse.ArgumentParser) -> None:
    image = commands.add_parser("image", help="the server's default workspace image (admins)")
    actions = image.add_subparsers(dest="action", metavar="ACTION", required=True)
    status = actions.add_parser("status", parents=[options],
                                help="whether the server's Docker engine has the default workspace image")
    status.set_defaults(run=_status)
    build = actions.add_parser("build", parents=[options],
                               help="build the default workspace image from the Containerfile, with its progress")
    build.set_defaults(run=_build)


@client_command
def _status(ctx: Context) -> int:
    image: dict[str, Any] = ctx.api.get("/api/admin/image")
    if ctx.out.json_mode:
        ctx.out.json(image)
        return EXIT_OK
    if image["present"]:
        ctx.out.line(f"{image['image']}: present")
    else:
        ctx.out.line(f"{image['image']}: {image['problem']}")
    build = image.get("build")
    if build:
        ctx.out.note(f"last build: {build['state']} (started by {build['started_by']})"
                     + (f": {build['error']}" if build.get("error") else ""))
    return EXIT_OK if image["present"] else EXIT_FAILURE


@client_command
def _build(ctx: Context) -> int:
    """Start the build, then print its progress as it comes until it ends."""
    image: dict[str, Any] = ctx.api.post("/api/admin/image/build")
    seen = 0
    while True:
        build = image["build"]
        for line in build["lines"]:
            if ctx.out.json_mode:
                ctx.out.json({"line": line}, compact=True)
            else:
                ctx.out.line(line)
        seen = build["line_count"]
        if build["state"] != "running":
            break
        time.sleep(_POLL_S)
        image = ctx.api.get("/api/admin/image", after=seen)
    if build["state"] == "succeeded":
        ctx.out.note(f"{image['image']} is built")
        return EXIT_OK
    ctx.out.line(f"the build failed: {build['error']}", style="red")
    return EXIT_FAILURE
