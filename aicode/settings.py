"""Server settings, read from `AICODE_*` environment variables by `Settings.from_env()`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["AGENT_ENV_REFUSED", "NETWORK_POLICIES", "SETTING_NAMES", "Settings", "SettingsError"]

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
    "AICODE_AGENT_NETWORK",
    "AICODE_OPEN_NETWORKS",
    "AICODE_ANTHROPIC_UPSTREAM",
    "AICODE_AGENT_UID",
    "AICODE_AGENT_GID",
    "AICODE_GIT_UID",
    "AICODE_GIT_GID",
    "AICODE_MODEL_PRICES",
)

# Network policies a workspace may name, besides the open networks an admin lists.
NETWORK_POLICIES = ("gateway", "allowlist", "none")
# Variables that would put a model credential (or a way around the gateway) into a container.
AGENT_ENV_REFUSED = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_BASE_URL",
                     "OPENAI_API_KEY", "CODEX_API_KEY", "OPENAI_BASE_URL", "GEMINI_API_KEY", "GOOGLE_API_KEY",
                     "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_BEARER_TOKEN_BEDROCK")


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


def _optional_int(env: Mapping[str, str], name: str) -> int | None:
    return _int(env, name, 0, minimum=0) if env.get(name, "").strip() else None


def _agent_env(names: tuple[str, ...]) -> tuple[str, ...]:
    refused = [name for name in names if name.upper() in AGENT_ENV_REFUSED]
    if refused:
        raise SettingsError(
            f"AICODE_AGENT_ENV must not pass {', '.join(refused)}: model credentials never enter a container "
            "(each user stores theirs with PUT /api/me/credentials/anthropic) and agents reach the model "
            "through aicode's gateway (point it elsewhere with AICODE_ANTHROPIC_UPSTREAM)")
    return names


def _upstream(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name, "").strip().rstrip("/") or default
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise SettingsError(f"{name} must be an http(s) URL such as {default}, got {raw!r}")
    return raw


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
    workspace_network: str = "gateway"
    max_concurrent_tasks: int = 2
    task_timeout_s: int = 3600
    agent_env: tuple[str, ...] = ()
    local_repo_roots: tuple[Path, ...] = ()
    bootstrap_admin: tuple[str, str] | None = field(default=None, repr=False)
    token_ttl_s: int = 12 * 3600
    log_format: str = "auto"
    log_level: str = "info"
    agent_network: str = "aicode-agents"
    open_networks: tuple[str, ...] = ()
    anthropic_upstream: str = "https://api.anthropic.com"
    # None: 10000/10001 when the server runs as root, else the server's own uid and gid.
    agent_uid: int | None = None
    agent_gid: int | None = None
    git_uid: int | None = None
    git_gid: int | None = None
    model_prices: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read settings from `env` (default: the process environment); raise SettingsError on bad values."""
        env = os.environ if env is None else env
        log_format = env.get("AICODE_LOG_FORMAT", "auto").strip() or "auto"
        if log_format not in ("auto", "json", "console"):
            raise SettingsError(f"AICODE_LOG_FORMAT must be auto, json or console, got {log_format!r}")
        roots = tuple(Path(p).expanduser().resolve() for p in _list(env, "AICODE_LOCAL_REPO_ROOTS", os.pathsep))
        settings = cls(
            data_dir=Path(env.get("AICODE_DATA_DIR", "").strip() or "~/.local/share/aicode").expanduser().resolve(),
            database_url=env.get("AICODE_DATABASE_URL", "").strip() or None,
            redis_url=env.get("AICODE_REDIS_URL", "").strip() or None,
            host=env.get("AICODE_HOST", "").strip() or "127.0.0.1",
            port=_int(env, "AICODE_PORT", 8000, minimum=0),
            secret_key=env.get("AICODE_SECRET_KEY", "").strip() or None,
            docker_url=env.get("AICODE_DOCKER_URL", "").strip() or None,
            workspace_image=env.get("AICODE_WORKSPACE_IMAGE", "").strip() or "aicode-workspace:latest",
            workspace_network=env.get("AICODE_WORKSPACE_NETWORK", "").strip() or "gateway",
            max_concurrent_tasks=_int(env, "AICODE_MAX_CONCURRENT_TASKS", 2),
            task_timeout_s=_int(env, "AICODE_TASK_TIMEOUT_S", 3600),
            agent_env=_agent_env(_list(env, "AICODE_AGENT_ENV", ",")),
            local_repo_roots=roots,
            bootstrap_admin=_bootstrap_admin(env.get("AICODE_BOOTSTRAP_ADMIN", "")),
            token_ttl_s=_int(env, "AICODE_TOKEN_TTL_S", 12 * 3600, minimum=60),
            log_format=log_format,
            log_level=(env.get("AICODE_LOG_LEVEL", "").strip() or "info").lower(),
            agent_network=env.get("AICODE_AGENT_NETWORK", "").strip() or "aicode-agents",
            open_networks=_list(env, "AICODE_OPEN_NETWORKS", ","),
            anthropic_upstream=_upstream(env, "AICODE_ANTHROPIC_UPSTREAM", "https://api.anthropic.com"),
            agent_uid=_optional_int(env, "AICODE_AGENT_UID"),
            agent_gid=_optional_int(env, "AICODE_AGENT_GID"),
            git_uid=_optional_int(env, "AICODE_GIT_UID"),
            git_gid=_optional_int(env, "AICODE_GIT_GID"),
            model_prices=Path(raw).expanduser().resolve() if (raw := env.get("AICODE_MODEL_PRICES", "").strip())
            else None,
        )
        settings.check()
        return settings

    def check(self) -> None:
        """Raise SettingsError for combinations no single value shows to be wrong."""
        allowed = (*NETWORK_POLICIES, *self.open_networks)
        if self.workspace_network not in allowed:
            raise SettingsError(f"AICODE_WORKSPACE_NETWORK must be one of {', '.join(allowed)} "
                                f"(open networks come from AICODE_OPEN_NETWORKS), got {self.workspace_network!r}")
        if self.agent_network in self.open_networks:
            raise SettingsError("AICODE_OPEN_NETWORKS must not list AICODE_AGENT_NETWORK")
