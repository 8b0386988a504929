"""`aicode mcp`: the team server's tasks as MCP tools, over stdio, for a local agent.

A local agent (Claude Code, an IDE) adds it with e.g. `claude mcp add aicode -- aicode mcp`; it
signs in as the CLI does (config file, or AICODE_SERVER / AICODE_TOKEN).
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from aicode import __version__
from aicode.cli.client.common import resolve_task_id, resolve_workspace
from aicode.cli.client.config import load_config
from aicode.cli.client.errors import EXIT_FAILURE, EXIT_OK, ClientError
from aicode.cli.client.http import ApiClient

__all__ = ["AicodeTools", "build_server", "register"]

_INSTRUCTIONS = (
    "Hands coding work to the team's aicode server: each task runs an agent in its own container on a "
    "workspace (a git repository) and ends as a commit on branch aicode/<task id>. The agent is Claude Code "
    "unless create_task's agent names codex (OpenAI Codex) or gemini (Google Gemini CLI). create_task answers at "
    "once; poll get_task until status is succeeded, failed, cancelled or interrupted; task_diff shows the "
    "result. Workspace names come from list_tasks or the user."
)
_Result = TypeVar("_Result")
Status = Literal["queued", "running", "succeeded", "failed", "cancelled", "interrupted"]
Agent = Literal["claude", "codex", "gemini"]  # the server's AgentName


def register(commands: Any, _: argparse.ArgumentParser) -> None:
    mcp = commands.add_parser("mcp", help="serve create_task, get_task, list_tasks and task_diff to a local "
                                          "agent over stdio (Model Context Protocol)")
    mcp.set_defaults(run=_serve)


def _compact(task: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "status", "agent", "model", "workspace_id", "branch", "head_commit", "error", "created_at",
            "finished_at", "cost_usd")
    return {key: task.get(key) for key in keys} | {"prompt": task["prompt"][:200]}


class AicodeTools:
    """The tools, as methods on one API client; each failure is a ClientError saying what went wrong."""

    def __init__(self, api: ApiClient) -> None:
        self._api = api

    def create_task(self, workspace: str, prompt: str, agent: Agent | None = None, model: str | None = None,
                    base_branch: str | None = None) -> dict[str, Any]:
        """Start a task on a workspace (by name) with an agent (default: the server's, claude); answers at once
        with the queued task."""
        workspace_id = resolve_workspace(self._api, workspace)["id"]
        body = {"prompt": prompt, "agent": agent, "model": model, "base_branch": base_branch}
        return _compact(self._api.post(f"/api/workspaces/{workspace_id}/tasks", {k: v for k, v in body.items() if v}))

    def get_task(self, task_id: str) -> dict[str, Any]:
        """A task's status, error, branch, commit, cost and (once it has commits) the files it changed."""
        task: dict[str, Any] = self._api.get(f"/api/tasks/{resolve_task_id(self._api, task_id)}")
        files = self._api.get(f"/api/tasks/{task['id']}/files") if task.get("head_commit") else []
        return task | {"files": files}

    def list_tasks(self, workspace: str | None = None, status: Status | None = None) -> list[dict[str, Any]]:
        """Recent tasks, newest first, optionally of one workspace (by name) and/or one status."""
        workspace_id = resolve_workspace(self._api, workspace)["id"] if workspace else None
        tasks = self._api.get("/api/tasks", workspace_id=workspace_id, status=status, limit=50)
        return [_compact(task) for task in tasks]

    def task_diff(self, task_id: str) -> str:
        """The task's changes as a unified diff (base commit to head commit); empty if none yet."""
        return self._api.get_text(f"/api/tasks/{resolve_task_id(self._api, task_id)}/diff")


def build_server(api: ApiClient) -> Any:
    """An MCP server whose tools call `api`; a failed call is a tool error carrying the CLI's message."""
    from mcp.server.mcpserver import MCPServer  # imported here: only `aicode mcp` pays for it
    from mcp.server.mcpserver.exceptions import ToolError

    server = MCPServer(name="aicode", version=__version__, instructions=_INSTRUCTIONS, log_level="WARNING")
    tools = AicodeTools(api)

    def as_tool(method: Callable[..., _Result]) -> Callable[..., _Result]:
        @functools.wraps(method)
        def call(*args: Any, **kwargs: Any) -> _Result:
            try:
                return method(*args, **kwargs)
            except ClientError as exc:
                raise ToolError(exc.message) from None
        return call

    for method in (tools.create_task, tools.get_task, tools.list_tasks, tools.task_diff):
        server.tool()(as_tool(method))
    return server


def _serve(_: argparse.Namespace) -> int:
    # stdout carries the protocol: every message of ours goes to stderr.
    try:
        config = load_config()
    except ClientError as exc:
        print(f"aicode: {exc.message}", file=sys.stderr)
        return exc.exit_code
    with ApiClient(config.server, config.token) as api:
        try:
            build_server(api).run("stdio")
        except KeyboardInterrupt:
            return EXIT_OK
        except Exception as exc:  # the transport's own failures: one line, not a trace on the agent's screen
            print(f"aicode: the MCP server stopped: {exc}", file=sys.stderr)
            return EXIT_FAILURE
    return EXIT_OK
