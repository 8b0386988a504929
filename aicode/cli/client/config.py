"""The client's config file: which server, and the API token that signs in to it.

`$XDG_CONFIG_HOME/aicode/config.json` (default `~/.config/aicode/config.json`), mode 0600 in a 0700
folder because it holds a credential. `AICODE_SERVER` and `AICODE_TOKEN` override what it says.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from aicode.cli.client.errors import EXIT_FAILURE, ClientError

__all__ = ["DEFAULT_SERVER", "ClientConfig", "config_path", "load_config", "normalize_server", "save_config"]

DEFAULT_SERVER = "http://127.0.0.1:8000"


@dataclass(frozen=True, slots=True)
class ClientConfig:
    server: str = DEFAULT_SERVER
    token: str | None = None
    token_id: str | None = None
    username: str | None = None

    def without_token(self) -> ClientConfig:
        return replace(self, token=None, token_id=None, username=None)


def config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base) / "aicode" / "config.json"


def normalize_server(url: str) -> str:
    """`host:port` → `http://host:port`, without a trailing slash."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    return url


def _read_file(path: Path) -> ClientConfig:
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return ClientConfig()
    except (OSError, ValueError) as exc:
        raise ClientError(f"cannot read the config file {path}: {exc} — fix it or delete it and run aicode login",
                          EXIT_FAILURE) from None
    if not isinstance(raw, dict):
        raise ClientError(f"the config file {path} is not a JSON object — delete it and run aicode login",
                          EXIT_FAILURE)
    fields = {name: value for name in ClientConfig.__dataclass_fields__ if isinstance(value := raw.get(name), str)}
    return ClientConfig(**fields)


def load_config(env: Mapping[str, str] | None = None, *, overrides: bool = True) -> ClientConfig:
    """The file's settings, with AICODE_SERVER / AICODE_TOKEN on top unless `overrides` is false."""
    env = os.environ if env is None else env
    config = _read_file(config_path(env))
    if not overrides:
        return replace(config, server=normalize_server(config.server))
    if env.get("AICODE_SERVER"):
        config = replace(config, server=env["AICODE_SERVER"])
    if env.get("AICODE_TOKEN"):
        # A token from the environment is not the stored one: its id (for logout) is unknown.
        config = replace(config, token=env["AICODE_TOKEN"], token_id=None)
    return replace(config, server=normalize_server(config.server))


def save_config(config: ClientConfig, env: Mapping[str, str] | None = None) -> Path:
    """Write the file atomically, readable by the user only (the folder too)."""
    path = config_path(env)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    body = {name: value for name, value in asdict(config).items() if value is not None}
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as file:
            json.dump(body, file, indent=2)
            file.write("\n")
        os.chmod(partial, 0o600)  # the umask may have narrowed it further, never widened: be exact
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path
