"""Test doubles for the agent side of aicode.

- ``mock_anthropic``: a scripted Anthropic Messages API (SSE) to point the REAL Claude Code CLI at;
  ``mock_openai`` and ``mock_gemini`` do the same for the Codex and Gemini CLIs. All three are subclasses of
  ``scripted_api.ScriptedApiMock``, which holds the server, the script queue and the request log.
- ``fake_claude.py``: a stdlib-only fake ``claude`` executable, scripted by ``@directives`` in the prompt.
- ``images``: ``ensure_fake_image()`` builds the workspace image with the fake as ``claude`` (offline, cached).
- ``containers``: run a command in a hardened container and collect its stdout/stderr lines.
- ``fixtures``: pytest fixtures over all of the above (import them, or list the module in ``pytest_plugins``).

And for the forge side (each served from a thread of its own, see ``threaded_server``):

- ``git_http``: ``GitHttpServer``, a real git server over smart HTTP (``git http-backend``) with Basic auth and
  GitHub-like protected branches.
- ``forges``: ``FakeGitHub`` / ``FakeGitLab`` REST APIs, and the webhook deliveries they send.
"""

from tests.fakes.containers import (
    ContainerOutput,
    RunningContainer,
    container_config,
    json_lines,
    run_container,
    started_container,
)
from tests.fakes.forges import FakeGitHub, FakeGitLab, github_comment_delivery, gitlab_note_delivery
from tests.fakes.git_http import GitHttpServer
from tests.fakes.images import DEFAULT_BASE_IMAGE, FAKE_CLAUDE, ensure_fake_image, fake_image_tag, wait_for_image
from tests.fakes.mock_anthropic import ApiError, MockAnthropic, Reply, error, reply, text, thinking, tool_use

__all__ = [
    "DEFAULT_BASE_IMAGE", "FAKE_CLAUDE", "ApiError", "ContainerOutput", "FakeGitHub", "FakeGitLab", "GitHttpServer",
    "MockAnthropic", "Reply", "RunningContainer", "container_config", "ensure_fake_image", "error", "fake_image_tag",
    "github_comment_delivery", "gitlab_note_delivery", "json_lines", "reply", "run_container", "started_container",
    "text", "thinking", "tool_use", "wait_for_image",
]
