"""`aicode login` and `aicode logout`: a personal API token kept in the config file."""

from __future__ import annotations

import argparse
import getpass
import socket
import sys
from typing import Any

from aicode.cli.client.common import Context, client_command
from aicode.cli.client.config import ClientConfig, load_config, normalize_server, save_config
from aicode.cli.client.errors import EXIT_OK, EXIT_USAGE, ClientError, NotSignedIn
from aicode.cli.client.http import ApiClient

__all__ = ["register"]


def register(commands: Any, options: argparse.ArgumentParser) -> None:
    login = commands.add_parser("login", parents=[options],
                                help="sign in and keep an API token (user and password from a prompt, or "
                                     "two lines of standard input)")
    login.add_argument("--server", help="server URL (default: the one signed in to last, or AICODE_SERVER)")
    login.set_defaults(run=_login)
    logout = commands.add_parser("logout", parents=[options], help="revoke the kept API token and forget it")
    logout.set_defaults(run=_logout)


def _credentials() -> tuple[str, str]:
    """User and password: prompts on a terminal, else two lines of standard input (for scripts)."""
    if sys.stdin.isatty():
        username = input("Username: ").strip()
        password = getpass.getpass("Password: ")
    else:
        username = sys.stdin.readline().strip()
        password = sys.stdin.readline().rstrip("\r\n")
    if not username or not password:
        raise ClientError("a username and a password are needed", EXIT_USAGE)
    return username, password


def _revoke_quietly(api: ApiClient, stored: ClientConfig) -> None:
    """Revoke the token being replaced; one already revoked is no loss."""
    if stored.token and stored.token_id:
        try:
            api.request("DELETE", f"/api/tokens/{stored.token_id}", token=stored.token)
        except ClientError:
            pass


@client_command
def _login(ctx: Context) -> int:
    server = normalize_server(ctx.args.server or ctx.config.server)
    username, password = _credentials()
    stored = load_config(overrides=False)
    with ApiClient(server, None) as api:
        signed_in = api.request("POST", "/api/auth/login", json={"username": username, "password": password},
                                signed=False).json()
        jwt = signed_in["access_token"]
        name = f"cli@{socket.gethostname()}"[:100]
        created = api.request("POST", "/api/tokens", json={"name": name}, token=jwt).json()
        # The short-lived JWT has served its purpose: from now on the API token signs requests.
        api.request("POST", "/api/auth/logout", token=jwt)
        if stored.server == server:
            _revoke_quietly(api, stored)
    path = save_config(ClientConfig(server=server, token=created["token"], token_id=created["id"],
                                    username=username))
    if ctx.out.json_mode:
        ctx.out.json({"server": server, "username": username, "token_id": created["id"], "token_name": name,
                      "config": str(path)})
    else:
        ctx.out.line(f"signed in to {server} as {username}; token {name!r} kept in {path}")
    return EXIT_OK


@client_command
def _logout(ctx: Context) -> int:
    token = ctx.config.token
    stored = load_config(overrides=False)
    revoked = False
    if token:
        try:
            if ctx.config.token_id:
                ctx.api.delete(f"/api/tokens/{ctx.config.token_id}")
            else:
                ctx.api.post("/api/auth/logout")  # revokes whatever credential signed the request
            revoked = True
        except NotSignedIn:
            pass  # already revoked on the server: forgetting it here is all that is left
    if stored.token and stored.token == token:
        save_config(stored.without_token())
    if ctx.out.json_mode:
        ctx.out.json({"signed_out": bool(token), "revoked": revoked})
    elif not token:
        ctx.out.line("not signed in")
    else:
        ctx.out.line("signed out" + ("" if revoked else " (the token had already been revoked)"))
    if token and stored.token != token:
        ctx.out.note("that token came from AICODE_TOKEN: unset it (the config file was left as it is)",
                     style="yellow")
    return EXIT_OK
