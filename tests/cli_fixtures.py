"""Fixtures of the client CLI tests (a pytest plugin: test modules name it in `pytest_plugins` and
never import it, so that pytest can rewrite its asserts)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aicode.settings import Settings
from tests.cli_support import Account, LiveServer, make_account, serve_in_thread


@pytest.fixture
def live_server(task_settings: Settings) -> Iterator[LiveServer]:
    with serve_in_thread(task_settings) as server:
        yield server


@pytest.fixture
def account(live_server: LiveServer, source_repo: Path, tmp_path: Path) -> Account:
    return make_account(live_server, source_repo, tmp_path / "home")
