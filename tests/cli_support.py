"""For client CLI tests: a live server on a real port (uvicorn in a thread), the CLI run as a real
process, and a TCP proxy that can cut a connection mid-stream."""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from aicode.app import create_app
from aicode.cli.server import tls_options
from aicode.settings import Settings
from tests.conftest import ADMIN

REPO = Path(__file__).resolve().parent.parent
TERMINAL = {"succeeded", "failed", "cancelled", "interrupted"}


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A port of 127.0.0.1 nothing listens on, for a server that starts next in a process of its own.

    Until that server binds it, another could take it. So it is not the kernel's choice (port 0): that
    comes from the ephemeral range, where every port-0 listener and outgoing connection of the tests
    running meanwhile lands too. It is taken below that range, at random, among the ports of this
    pytest-xdist worker's own residue (mod 8): two workers never pick the same one.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    residue = int(worker) % 8 if worker.isdigit() else 0
    low = _ephemeral_low()
    for _ in range(200):
        port = random.randrange(max(1024, low - 16384) // 8, low // 8) * 8 + residue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


def listening_socket(port: int = 0) -> socket.socket:
    """A socket bound to 127.0.0.1:`port` (0: the kernel picks) for an in-process server to serve on: held from
    the start, so no other test can take its port meanwhile."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


@dataclass
class LiveServer:
    url: str
    settings: Settings

    def api(self, token: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


@contextlib.contextmanager
def serve_in_thread(settings: Settings) -> Iterator[LiveServer]:
    """The app under uvicorn on 127.0.0.1:<a port of its own>, in a thread with its own event loop."""
    sock = listening_socket()
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_config=None,
                            access_log=False, lifespan="on", timeout_graceful_shutdown=5, timeout_keep_alive=30,
                            **tls_options(settings))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="live-server", daemon=True)
    with sock:
        thread.start()
        deadline = time.monotonic() + 60
        while not server.started:
            assert thread.is_alive(), "the live server did not start (see the log above)"
            assert time.monotonic() < deadline, "the live server did not start within 60 s"
            time.sleep(0.05)
        try:
            scheme = "https" if settings.tls_cert else "http"
            yield LiveServer(url=f"{scheme}://127.0.0.1:{port}", settings=settings)
        finally:
            server.should_exit = True
            thread.join(timeout=30)


def token_for(server: LiveServer, username: str, password: str) -> str:
    """A personal API token of `username`'s."""
    with httpx.Client(base_url=server.url, timeout=30) as http:
        jwt = http.post("/api/auth/login", json={"username": username, "password": password}).json()["access_token"]
        created = http.post("/api/tokens", json={"name": "test"}, headers={"Authorization": f"Bearer {jwt}"})
        assert created.status_code == 201, created.text
        return created.json()["token"]


@dataclass
class Account:
    """alice, signed in to the live server, with a ready workspace `proj` (the source repo)."""

    server: LiveServer
    token: str
    workspace: dict[str, Any]
    home: Path

    def env(self, **extra: str) -> dict[str, str]:
        """A process environment for the CLI: a private HOME, the server and token, no other AICODE_*."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AICODE_", "XDG_", "NO_COLOR", "PAGER"))}
        env.update({"HOME": str(self.home), "XDG_CONFIG_HOME": str(self.home / "xdg"),
                    "AICODE_SERVER": self.server.url, "AICODE_TOKEN": self.token,
                    "GIT_COMMITTER_NAME": "Local", "GIT_COMMITTER_EMAIL": "local@example.com"})
        return {**env, **extra}

    def task(self, task_id: str) -> dict[str, Any]:
        with self.server.api(self.token) as api:
            return api.get(f"/api/tasks/{task_id}").json()

    def submit(self, prompt: str) -> dict[str, Any]:
        with self.server.api(self.token) as api:
            response = api.post(f"/api/workspaces/{self.workspace['id']}/tasks", json={"prompt": prompt})
            assert response.status_code == 202, response.text
            return response.json()

    def wait(self, task_id: str, statuses: set[str] = TERMINAL, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (task := self.task(task_id))["status"] not in statuses:
            assert time.monotonic() < deadline, f"task {task_id} stayed {task['status']}"
            time.sleep(0.05)
        return task


def make_account(server: LiveServer, source_repo: Path, home: Path) -> Account:
    admin = token_for(server, *ADMIN)
    with server.api(admin) as api:
        assert api.post("/api/admin/users", json={"username": "alice", "password": "alice-password"}
                        ).status_code == 201
    token = token_for(server, "alice", "alice-password")
    with server.api(token) as api:
        assert api.put("/api/me/credentials/anthropic", json={"api_key": "sk-test-alice-key"}).status_code == 204
        workspace = api.post("/api/workspaces", json={"name": "proj", "repo_url": str(source_repo)}).json()
        deadline = time.monotonic() + 30
        while workspace["status"] == "cloning" and time.monotonic() < deadline:
            time.sleep(0.05)
            workspace = api.get(f"/api/workspaces/{workspace['id']}").json()
    assert workspace["status"] == "ready", workspace
    home.mkdir(parents=True, exist_ok=True)
    return Account(server=server, token=token, workspace=workspace, home=home)


def aicode(env: dict[str, str], *args: str, stdin: str = "", cwd: Path | None = None,
           timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aicode", *args], cwd=cwd or REPO, env=env, input=stdin,
                          capture_output=True, text=True, timeout=timeout)


def json_lines(text: str) -> list[Any]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def assert_one_error_line(result: subprocess.CompletedProcess[str], code: int, needle: str) -> None:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert needle in lines[0], lines[0]


# -- a proxy that cuts one connection ---------------------------------------------------------------


@dataclass
class CuttingProxy:
    """Forwards 127.0.0.1:port to the server; the first event stream is cut after `cut_after` bytes
    of its answer. Records each event-stream request, to see how the client resumed.

    Requests on a kept-alive connection follow one another, so whatever the server sends after an
    event-stream request is that stream's answer.
    """

    target_port: int
    cut_after: int
    port: int = field(default_factory=free_port)
    stream_requests: list[str] = field(default_factory=list)
    cuts: int = 0
    _listener: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()

    def _accept(self) -> None:
        assert self._listener is not None
        with contextlib.suppress(OSError):
            while True:
                client, _ = self._listener.accept()
                threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.target_port))
        budget: list[int | None] = [None]  # bytes of answer left before the cut, once a stream to cut began

        def requests() -> None:
            with contextlib.suppress(OSError):
                while data := client.recv(65536):
                    if b"text/event-stream" in data:
                        self.stream_requests.append(data.decode(errors="replace"))
                        if self.cuts == 0:
                            self.cuts, budget[0] = 1, self.cut_after
                    upstream.sendall(data)
            _close(client, upstream)

        threading.Thread(target=requests, daemon=True).start()
        with contextlib.suppress(OSError):
            while data := upstream.recv(4096):
                left = budget[0]
                if left is not None and len(data) >= left:
                    client.sendall(data[:left])
                    break
                if left is not None:
                    budget[0] = left - len(data)
                client.sendall(data)
        _close(client, upstream)


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
