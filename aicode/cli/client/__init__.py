"""The `aicode` client commands: talk to an aicode server over its HTTP API (login, run, chat, logs, pull …)."""

from __future__ import annotations

from typing import Any

from aicode.cli.client import (
    agent_commands,
    auth_commands,
    chat_commands,
    comment_commands,
    forge_commands,
    image_commands,
    mcp_server,
    review_commands,
    task_commands,
    workspace_commands,
)
from aicode.cli.client.common import client_options

__all__ = ["register"]


def register(commands: Any) -> None:
    """Add the client commands to the `aicode` parser's subcommands."""
    options = client_options()
    for module in (auth_commands, workspace_commands, task_commands, chat_commands, agent_commands, review_commands,
                   comment_commands, forge_commands, image_commands, mcp_server):
        module.register(commands, options)
