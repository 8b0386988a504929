from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from aicode.settings import SETTING_NAMES, Settings, SettingsError

README = Path(__file__).resolve().parent.parent / "README.md"


def test_every_setting_the_code_reads_is_listed() -> None:
    source = "\n".join(p.read_text() for p in (Path(__file__).parent.parent / "aicode").rglob("*.py"))
    read = set(re.findall(r'"(AICODE_[A-Z_]+)"', source))
    # Client-side variables of the CLI are documented with the CLI, not as server settings.
    assert read - {"AICODE_SERVER", "AICODE_TOKEN"} <= set(SETTING_NAMES)


@pytest.mark.parametrize("name", SETTING_NAMES)
def test_every_setting_is_documented_in_the_readme(name: str) -> None:
    assert re.search(rf"`{name}`", README.read_text()), f"{name} is not documented in README.md"


def test_defaults_apply_when_nothing_is_set(tmp_path: Path) -> None:
    settings = Settings.from_env({"AICODE_DATA_DIR": str(tmp_path)})
    assert settings.database_url is None
    assert settings.redis_url is None
    assert settings.port == 8000
    assert settings.max_concurrent_tasks >= 1
    assert settings.data_dir == tmp_path.resolve()
    assert settings.local_repo_roots == ()


def test_values_are_parsed(tmp_path: Path) -> None:
    env = {
        "AICODE_DATA_DIR": str(tmp_path),
        "AICODE_DATABASE_URL": "postgresql://u@h/db",
        "AICODE_PORT": "9000",
        "AICODE_MAX_CONCURRENT_TASKS": "4",
        "AICODE_AGENT_ENV": "TZ, HTTPS_PROXY",
        "AICODE_LOCAL_REPO_ROOTS": os.pathsep.join([str(tmp_path / "a"), str(tmp_path / "b")]),
        "AICODE_BOOTSTRAP_ADMIN": "root:pass:word",
    }
    settings = Settings.from_env(env)
    assert settings.port == 9000
    assert settings.max_concurrent_tasks == 4
    assert settings.agent_env == ("TZ", "HTTPS_PROXY")
    assert settings.local_repo_roots == ((tmp_path / "a").resolve(), (tmp_path / "b").resolve())
    assert settings.bootstrap_admin == ("root", "pass:word")
    assert "pass:word" not in repr(settings)


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"AICODE_PORT": "abc"}, "AICODE_PORT"),
        ({"AICODE_MAX_CONCURRENT_TASKS": "0"}, "AICODE_MAX_CONCURRENT_TASKS"),
        ({"AICODE_BOOTSTRAP_ADMIN": "nopassword"}, "AICODE_BOOTSTRAP_ADMIN"),
        ({"AICODE_LOG_FORMAT": "xml"}, "AICODE_LOG_FORMAT"),
    ],
)
def test_bad_values_raise_an_error_naming_the_setting(env: dict[str, str], needle: str) -> None:
    with pytest.raises(SettingsError, match=needle):
        Settings.from_env(env)


@pytest.mark.parametrize("name", ["ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_BASE_URL", "OPENAI_API_KEY"])
def test_agent_env_refuses_credentials_and_a_way_around_the_gateway(name: str) -> None:
    with pytest.raises(SettingsError, match=f"AICODE_AGENT_ENV must not pass {name}"):
        Settings.from_env({"AICODE_AGENT_ENV": f"TZ,{name}"})


def test_the_default_network_policy_is_the_gateway() -> None:
    settings = Settings.from_env({})
    assert settings.workspace_network == "gateway" and settings.agent_network == "aicode-agents"
    assert settings.anthropic_upstream == "https://api.anthropic.com"


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"AICODE_WORKSPACE_NETWORK": "bridge"}, "AICODE_WORKSPACE_NETWORK"),
        ({"AICODE_OPEN_NETWORKS": "aicode-agents"}, "AICODE_OPEN_NETWORKS"),
        ({"AICODE_ANTHROPIC_UPSTREAM": "ftp://example.com"}, "AICODE_ANTHROPIC_UPSTREAM"),
        ({"AICODE_AGENT_UID": "x"}, "AICODE_AGENT_UID"),
    ],
)
def test_bad_network_and_gateway_settings_name_the_setting(env: dict[str, str], needle: str) -> None:
    with pytest.raises(SettingsError, match=needle):
        Settings.from_env(env)


def test_an_open_network_may_be_the_default_policy() -> None:
    settings = Settings.from_env({"AICODE_OPEN_NETWORKS": "bridge", "AICODE_WORKSPACE_NETWORK": "bridge"})
    assert settings.open_networks == ("bridge",) and settings.workspace_network == "bridge"
