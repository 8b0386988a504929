"""pytest fixtures for the agent doubles: a Docker client, the workspace images, agent dirs, the mock API.

Use them with ``from tests.fakes.fixtures import *`` in a test module, or
``pytest_plugins = ["tests.fakes.fixtures"]`` in a conftest.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiodocker
import pytest

from tests.fakes.images import DEFAULT_BASE_IMAGE, ensure_fake_image, wait_for_image
from tests.fakes.mock_anthropic import MockAnthropic

__all__ = ["agent_config_dir", "agent_workspace", "docker_client", "fake_image", "mock_anthropic",
           "workspace_image"]


@pytest.fixture(scope="session")
async def docker_client() -> AsyncIterator[aiodocker.Docker]:
    docker = aiodocker.Docker(url=os.environ.get("AICODE_TEST_DOCKER_URL"))
    try:
        yield docker
    finally:
        await docker.close()


@pytest.fixture(scope="session")
async def workspace_image(docker_client: aiodocker.Docker) -> str:
    """The workspace image with the REAL Claude Code CLI (tests/image/build.sh makes it)."""
    await wait_for_image(docker_client, DEFAULT_BASE_IMAGE, timeout=90)
    return DEFAULT_BASE_IMAGE


@pytest.fixture(scope="session")
async def fake_image(docker_client: aiodocker.Docker, workspace_image: str) -> str:
    """The workspace image with fake_claude.py as `claude`."""
    return await ensure_fake_image(docker_client, workspace_image)


def _shared_dir(path: Path) -> Path:
    # The agent runs as uid 1000, the tests as whoever they are: let both write.
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o777)
    return path


@pytest.fixture
def agent_workspace(tmp_path: Path) -> Path:
    """A host folder to bind-mount at /workspace."""
    return _shared_dir(tmp_path / "workspace")


@pytest.fixture
def agent_config_dir(tmp_path: Path) -> Path:
    """A host folder to bind-mount as CLAUDE_CONFIG_DIR (sessions survive the container)."""
    return _shared_dir(tmp_path / "claude-config")


@pytest.fixture
async def mock_anthropic() -> AsyncIterator[MockAnthropic]:
    async with MockAnthropic(host="127.0.0.1", port=0) as mock:
        yield mock
