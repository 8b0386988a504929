"""Server settings, read from `AICODE_*` environment variables by `Settings.from_env()`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SETTING_NAMES", "Settings", "SettingsError"]

# Every setting the server reads; the README documents each (a test checks).
SETTING_NAMES: tuple[str, ...] = (
    "AICODE_DATABASE_URL",
    "AICODE_REDIS_URL",
    "AICODE_DATA_DIR",
    "AICODE_HOST",
    "AICODE_PORT",
    "AICODE_SECRET_KEY",
    "AICODE_DOCKER_URL",
    "AICODE_WORKSPACE_IMAGE",
    "AICODE_WORKSPACE_NETWORK",
    "AICODE_MAX_CONCURRENT_TASKS",
    "AICODE_TASK_TIMEOUT_S",
    "AICODE_AGENT_ENV",
    "AICODE_LOCAL_REPO_ROOTS",
    "AICODE_BOOTSTRAP_ADMIN",
    "AICODE_TOKEN_TTL_S",
    "AICODE_LOG_FORMAT",
    "AICODE_LOG_LEVEL",
)

NETWORK_MODES = ("none", "bridge", "host")


class SettingsError(ValueError):
    """A setting has a value the server cannot use; the message names it and says why."""


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    return value


def _list(env: Mapping[str, str], name: str, separator: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in env.get(name, "").split(separator) if part.strip())


def _bootstrap_admin(raw: str) -> tuple[str, str] | None:
    if not raw:
        return None
    name, sep, password = raw.partition(":")
    if not sep or not name.strip() or not password:
        raise SettingsError("AICODE_BOOTSTRAP_ADMIN must look like name:password")
    return name.strip(), password


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the server is configured with. Built once, passed to `create_app`."""

    data_dir: Path
    database_url: str | None = None
    redis_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    secret_key: str | None = None
    docker_url: str | None = None
    workspace_image: str = "aicode-workspace:latest"
    workspace_network: str = "none"
    max_concurrent_tasks: int = 2
    task_timeout_s: int = 3600
    agent_env: tuple[str, ...] = ()
    local_repo_roots: tuple[Path, ...] = ()
    bootstrap_admin: tuple[str, str] | None = field(default=None, repr=False)
    token_ttl_s: int = 12 * 3600
    log_format: str = "auto"
    log_level: str = "info"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read settings from `env` (default: the process environment); raise SettingsError on bad values."""
        env = os.environ if env is None else env
        log_format = env.get("AICODE_LOG_FORMAT", "auto").strip() or "auto"
        if log_format not in ("auto", "json", "console"):
            raise SettingsError(f"AICODE_LOG_FORMAT must be auto, json or console, got {log_format!r}")
        roots = tuple(Path(p).expanduser().resolve() for p in _list(env, "AICODE_LOCAL_REPO_ROOTS", os.pathsep))
        return cls(
            data_dir=Path(env.get("AICODE_DATA_DIR", "").strip() or "~/.local/share/aicode").expanduser().resolve(),
            database_url=env.get("AICODE_DATABASE_URL", "").strip() or None,
            redis_url=env.get("AICODE_REDIS_URL", "").strip() or None,
            host=env.get("AICODE_HOST", "").strip() or "127.0.0.1",
            port=_int(env, "AICODE_PORT", 8000, minimum=0),
            secret_key=env.get("AICODE_SECRET_KEY", "").strip() or None,
            docker_url=env.get("AICODE_DOCKER_URL", "").strip() or None,
            workspace_image=env.get("AICODE_WORKSPACE_IMAGE", "").strip() or "aicode-workspace:latest",
            workspace_network=env.get("AICODE_WORKSPACE_NETWORK", "").strip() or "none",
            max_concurrent_tasks=_int(env, "AICODE_MAX_CONCURRENT_TASKS", 2),
            task_timeout_s=_int(env, "AICODE_TASK_TIMEOUT_S", 3600),
            agent_env=_list(env, "AICODE_AGENT_ENV", ","),
            local_repo_roots=roots,
            bootstrap_admin=_bootstrap_admin(env.get("AICODE_BOOTSTRAP_ADMIN", "")),
            token_ttl_s=_int(env, "AICODE_TOKEN_TTL_S", 12 * 3600, minimum=60),
            log_format=log_format,
            log_level=(env.get("AICODE_LOG_LEVEL", "").strip() or "info").lower(),
        )
