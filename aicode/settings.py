"""Server settings, read from `AICODE_*` environment variables by `Settings.from_env()`."""

from __future__ import annotations

import os
import re
import socket
import ssl
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
    "AICODE_CONTAINERFILE",
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
    "AICODE_OPENAI_UPSTREAM",
    "AICODE_GEMINI_UPSTREAM",
    "AICODE_AGENT_UID",
    "AICODE_AGENT_GID",
    "AICODE_GIT_UID",
    "AICODE_GIT_GID",
    "AICODE_MODEL_PRICES",
    "AICODE_MAX_RUNNING_PER_USER",
    "AICODE_MAX_RUNNING_PER_WORKSPACE",
    "AICODE_MAX_QUEUED_PER_USER",
    "AICODE_MAX_WORKSPACES_PER_USER",
    "AICODE_MAX_TASK_TIMEOUT_S",
    "AICODE_ALLOWED_GIT_HOSTS",
    "AICODE_ALLOW_INSECURE_REMOTES",
    "AICODE_JWT_JWKS_URL",
    "AICODE_JWT_ISSUER",
    "AICODE_JWT_AUDIENCE",
    "AICODE_OIDC_ISSUER",
    "AICODE_OIDC_CLIENT_ID",
    "AICODE_OIDC_CLIENT_SECRET",
    "AICODE_OIDC_ADMIN_GROUPS",
    "AICODE_OIDC_NAME",
    "AICODE_NODE_NAME",
    "AICODE_NODE_LEASE_S",
    "AICODE_PUBLIC_URL",
    "AICODE_METRICS_TOKEN",
    "AICODE_RETENTION_DAYS",
    "AICODE_SESSION_IDLE_S",
    "AICODE_WARM_POOL",
    "AICODE_MIN_FREE_DISK_MB",
    "AICODE_TLS_CERT",
    "AICODE_TLS_KEY",
    "AICODE_NOTIFY_RETRY_BASE_S",
)

# Network policies a workspace may name, besides the open networks an admin lists.
NETWORK_POLICIES = ("gateway", "allowlist", "none")
# Variables that would put a model credential (or a way around the gateway) into a container.
AGENT_ENV_REFUSED = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_BASE_URL",
                     "OPENAI_API_KEY", "CODEX_API_KEY", "OPENAI_BASE_URL", "GEMINI_API_KEY", "GOOGLE_API_KEY",
                     "GOOGLE_GEMINI_BASE_URL",
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


def _bool(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not 0 < value < 86400:
        raise SettingsError(f"{name} must be more than 0 and less than a day, got {raw}")
    return value


def _optional_int(env: Mapping[str, str], name: str, minimum: int = 0) -> int | None:
    return _int(env, name, 0, minimum=minimum) if env.get(name, "").strip() else None


def _agent_env(names: tuple[str, ...]) -> tuple[str, ...]:
    refused = [name for name in names if name.upper() in AGENT_ENV_REFUSED]
    if refused:
        raise SettingsError(
            f"AICODE_AGENT_ENV must not pass {', '.join(refused)}: model credentials never enter a container "
            "(each user stores theirs in Settings, or with PUT /api/me/credentials/{anthropic,openai,gemini}) and "
            "agents reach the model through aicode's gateway (point it elsewhere with AICODE_ANTHROPIC_UPSTREAM, "
            "AICODE_OPENAI_UPSTREAM or AICODE_GEMINI_UPSTREAM)")
    return names


def _upstream(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name, "").strip().rstrip("/") or default
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise SettingsError(f"{name} must be an http(s) URL such as {default}, got {raw!r}")
    return raw


def _provider_url(env: Mapping[str, str], name: str) -> str | None:
    """An identity provider's URL, kept exactly as given (issuers are compared as strings)."""
    raw = env.get(name, "").strip()
    if not raw:
        return None
    parts = urlsplit(raw)
    # Plain http only on this machine (tests, a provider beside the server): tokens and keys must not
    # cross a network unprotected.
    loopback = parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")
    if (parts.scheme != "https" and not loopback) or not parts.hostname or parts.fragment:
        raise SettingsError(f"{name} must be an https URL (http only on 127.0.0.1 or localhost), got {raw!r}")
    return raw


def _check_single_sign_on(settings: Settings) -> None:
    if (settings.jwt_issuer or settings.jwt_audience) and not settings.jwt_jwks_url:
        raise SettingsError("AICODE_JWT_ISSUER and AICODE_JWT_AUDIENCE need AICODE_JWT_JWKS_URL "
                            "(the URL of the key set that signs those tokens)")
    client = {"AICODE_OIDC_CLIENT_ID": settings.oidc_client_id,
              "AICODE_OIDC_CLIENT_SECRET": settings.oidc_client_secret}
    if settings.oidc_issuer:
        missing = [name for name, value in client.items() if not value]
        if missing:
            raise SettingsError(f"AICODE_OIDC_ISSUER needs {' and '.join(missing)} "
                                "(from the client registered for aicode at the identity provider)")
    elif any(client.values()) or settings.oidc_admin_groups or settings.oidc_name:
        raise SettingsError("AICODE_OIDC_CLIENT_ID, _CLIENT_SECRET, _ADMIN_GROUPS and _NAME need AICODE_OIDC_ISSUER")


def _bootstrap_admin(raw: str) -> tuple[str, str] | None:
    if not raw:
        return None
    name, sep, password = raw.partition(":")
    if not sep or not name.strip() or not password:
        raise SettingsError("AICODE_BOOTSTRAP_ADMIN must look like name:password")
    return name.strip(), password


_NODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


def _node_name(env: Mapping[str, str]) -> str:
    name = env.get("AICODE_NODE_NAME", "").strip() or socket.gethostname()
    if not _NODE_NAME.fullmatch(name):
        raise SettingsError("AICODE_NODE_NAME must be 1-63 letters, digits, '.', '_' or '-', starting with a "
                            f"letter or digit, got {name!r}")
    return name


def _path(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name, "").strip()
    return Path(raw).expanduser().resolve() if raw else None


def _check_tls(cert: Path | None, key: Path | None) -> None:
    """Both or neither, and a pair the TLS library accepts: a bad file fails at start-up, not at the first client."""
    if (cert is None) != (key is None):
        raise SettingsError("AICODE_TLS_CERT and AICODE_TLS_KEY go together: set both (PEM files) or neither")
    if cert is None or key is None:
        return
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise SettingsError(f"AICODE_TLS_CERT ({cert}) and AICODE_TLS_KEY ({key}) cannot be used: {exc}") from None


def _public_url(env: Mapping[str, str]) -> str | None:
    raw = env.get("AICODE_PUBLIC_URL", "").strip().rstrip("/")
    if not raw:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise SettingsError(f"AICODE_PUBLIC_URL must be an http(s) URL such as https://aicode.example.com, got {raw!r}")
    return raw


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
    # What `aicode image build` builds (its `workspace` target); None: the Containerfile shipped with aicode.
    containerfile: Path | None = None
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
    openai_upstream: str = "https://api.openai.com/v1"  # the Responses API base (…/v1)
    gemini_upstream: str = "https://generativelanguage.googleapis.com"
    # None: 10000/10001 when the server runs as root, else the server's own uid and gid.
    agent_uid: int | None = None
    agent_gid: int | None = None
    git_uid: int | None = None
    git_gid: int | None = None
    model_prices: Path | None = None
    # Limits that keep one person from starving the rest. None: as many as AICODE_MAX_CONCURRENT_TASKS.
    max_running_per_user: int | None = None
    max_running_per_workspace: int | None = None
    max_queued_per_user: int = 50
    max_workspaces_per_user: int = 50
    max_task_timeout_s: int = 6 * 3600
    # Hosts on a local or private network that repositories may still be fetched from (admins' choice).
    allowed_git_hosts: tuple[str, ...] = ()
    allow_insecure_remotes: bool = False
    # Single sign-on: bearer tokens of an external identity provider, verified through its JWKS ...
    jwt_jwks_url: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    # ... and browser sign-in through an OpenID Connect provider.
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = field(default=None, repr=False)
    oidc_admin_groups: tuple[str, ...] = ()
    oidc_name: str | None = None
    # Several nodes (server processes, each with its own data dir and Docker engine) may share the
    # database and Redis; each names itself and holds a lease on its running turns.
    node_name: str = field(default_factory=socket.gethostname)
    node_lease_s: float = 30.0
    # The address people reach the server at (links in pull requests and forge comments, webhook URLs);
    # None: http://HOST:PORT.
    public_url: str | None = None
    # The bearer token a Prometheus scraper sends to /metrics; None: /metrics answers loopback clients only.
    metrics_token: str | None = field(default=None, repr=False)
    # Ended tasks' working copies and central state are removed after this many days (None: kept).
    retention_days: int | None = None
    session_idle_s: int = 900  # a live session with no prompt for this long is ended (its state kept)
    warm_pool: int = 1  # idle hardened containers kept ready per (image, limits, network); 0: none
    # Below this much free space on the data disk new tasks are refused (and /readyz warns under twice it).
    min_free_disk_mb: int = 1024
    # HTTPS in-process: a PEM certificate (chain) and its key; None: plain http (a proxy terminates TLS).
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # The first wait before a failed notification is sent again; later ones are 6, 24, 120 and 720 times it.
    notify_retry_base_s: float = 5.0

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
            containerfile=_path(env, "AICODE_CONTAINERFILE"),
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
            openai_upstream=_upstream(env, "AICODE_OPENAI_UPSTREAM", "https://api.openai.com/v1"),
            gemini_upstream=_upstream(env, "AICODE_GEMINI_UPSTREAM", "https://generativelanguage.googleapis.com"),
            agent_uid=_optional_int(env, "AICODE_AGENT_UID"),
            agent_gid=_optional_int(env, "AICODE_AGENT_GID"),
            git_uid=_optional_int(env, "AICODE_GIT_UID"),
            git_gid=_optional_int(env, "AICODE_GIT_GID"),
            max_running_per_user=_optional_int(env, "AICODE_MAX_RUNNING_PER_USER", minimum=1),
            max_running_per_workspace=_optional_int(env, "AICODE_MAX_RUNNING_PER_WORKSPACE", minimum=1),
            max_queued_per_user=_int(env, "AICODE_MAX_QUEUED_PER_USER", 50),
            max_workspaces_per_user=_int(env, "AICODE_MAX_WORKSPACES_PER_USER", 50),
            max_task_timeout_s=_int(env, "AICODE_MAX_TASK_TIMEOUT_S", 6 * 3600, minimum=60),
            allowed_git_hosts=_list(env, "AICODE_ALLOWED_GIT_HOSTS", ","),
            allow_insecure_remotes=_bool(env, "AICODE_ALLOW_INSECURE_REMOTES"),
            model_prices=Path(raw).expanduser().resolve() if (raw := env.get("AICODE_MODEL_PRICES", "").strip())
            else None,
            jwt_jwks_url=_provider_url(env, "AICODE_JWT_JWKS_URL"),
            jwt_issuer=env.get("AICODE_JWT_ISSUER", "").strip() or None,
            jwt_audience=env.get("AICODE_JWT_AUDIENCE", "").strip() or None,
            oidc_issuer=_provider_url(env, "AICODE_OIDC_ISSUER"),
            oidc_client_id=env.get("AICODE_OIDC_CLIENT_ID", "").strip() or None,
            oidc_client_secret=env.get("AICODE_OIDC_CLIENT_SECRET", "").strip() or None,
            oidc_admin_groups=_list(env, "AICODE_OIDC_ADMIN_GROUPS", ","),
            oidc_name=env.get("AICODE_OIDC_NAME", "").strip() or None,
            node_name=_node_name(env),
            node_lease_s=float(_int(env, "AICODE_NODE_LEASE_S", 30, minimum=2)),
            public_url=_public_url(env),
            metrics_token=env.get("AICODE_METRICS_TOKEN", "").strip() or None,
            retention_days=_optional_int(env, "AICODE_RETENTION_DAYS", minimum=1),
            session_idle_s=_int(env, "AICODE_SESSION_IDLE_S", 900, minimum=1),
            warm_pool=_int(env, "AICODE_WARM_POOL", 1, minimum=0),
            min_free_disk_mb=_int(env, "AICODE_MIN_FREE_DISK_MB", 1024, minimum=0),
            tls_cert=_path(env, "AICODE_TLS_CERT"),
            tls_key=_path(env, "AICODE_TLS_KEY"),
            notify_retry_base_s=_seconds(env, "AICODE_NOTIFY_RETRY_BASE_S", 5.0),
        )
        settings.check()
        return settings

    @property
    def site_url(self) -> str:
        """Where people reach the server: AICODE_PUBLIC_URL, else this process's own address."""
        if self.public_url:
            return self.public_url
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls_cert else 'http'}://{host}:{self.port}"

    def check(self) -> None:
        """Raise SettingsError for combinations no single value shows to be wrong."""
        allowed = (*NETWORK_POLICIES, *self.open_networks)
        if self.workspace_network not in allowed:
            raise SettingsError(f"AICODE_WORKSPACE_NETWORK must be one of {', '.join(allowed)} "
                                f"(open networks come from AICODE_OPEN_NETWORKS), got {self.workspace_network!r}")
        if self.agent_network in self.open_networks:
            raise SettingsError("AICODE_OPEN_NETWORKS must not list AICODE_AGENT_NETWORK")
        if self.task_timeout_s > self.max_task_timeout_s:
            raise SettingsError(f"AICODE_TASK_TIMEOUT_S ({self.task_timeout_s}) must not exceed "
                                f"AICODE_MAX_TASK_TIMEOUT_S ({self.max_task_timeout_s})")
        _check_single_sign_on(self)
        _check_tls(self.tls_cert, self.tls_key)
