"""Runs the gateway's two listeners (model API and CONNECT proxy) inside the server's own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import Callable, Iterable, Iterator

import aiohttp
import uvicorn

from aicode.gateway.egress import Address, EgressProxy, default_address_allowed
from aicode.gateway.forwarding import build_gateway
from aicode.gateway.models import GatewayBackend
from aicode.gateway.prices import PriceTable

__all__ = ["ANTHROPIC_UPSTREAM", "GEMINI_UPSTREAM", "OPENAI_UPSTREAM", "GatewayListener", "GatewayStartError"]

ANTHROPIC_UPSTREAM = "https://api.anthropic.com"
OPENAI_UPSTREAM = "https://api.openai.com/v1"
GEMINI_UPSTREAM = "https://generativelanguage.googleapis.com"
# Answers stream for minutes, so only connecting is bounded; a stalled stream is the turn timeout's job.
_CONNECT_TIMEOUT_S = 10.0
# In-flight answers get this long to finish when the server stops; then they are cut.
_SHUTDOWN_GRACE_S = 2


class GatewayStartError(OSError):
    """The gateway could not listen where it was asked to (an OSError, like the bind failure it reports)."""


class _EmbeddedServer(uvicorn.Server):
    """uvicorn serving inside someone else's event loop: the host process keeps its signal handlers."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class GatewayListener:
    """The model gateway (HTTP) and the egress proxy (CONNECT), each on an OS-chosen port of one host."""

    def __init__(self, backend: GatewayBackend, prices: PriceTable, *, upstream: str = ANTHROPIC_UPSTREAM,
                 openai_upstream: str = OPENAI_UPSTREAM, gemini_upstream: str = GEMINI_UPSTREAM,
                 address_allowed: Callable[[Address], bool] = default_address_allowed,
                 blocked_addresses: Iterable[Address] = ()) -> None:
        self._backend = backend
        self._prices = prices
        self._upstreams = {"anthropic": upstream, "openai": openai_upstream, "gemini": gemini_upstream}
        self._address_allowed = address_allowed
        self._blocked = tuple(blocked_addresses)
        self._session: aiohttp.ClientSession | None = None
        self._server: _EmbeddedServer | None = None
        self._serving: asyncio.Task[None] | None = None
        self._proxy: EgressProxy | None = None
        self._http_port = 0
        self._proxy_port = 0

    @property
    def http_port(self) -> int:
        """The model gateway's port (ANTHROPIC_BASE_URL=http://<host>:<http_port>; …/openai/v1, …/gemini)."""
        return self._http_port

    @property
    def proxy_port(self) -> int:
        """The CONNECT proxy's port (HTTPS_PROXY=http://aicode:<token>@<host>:<proxy_port>)."""
        return self._proxy_port

    async def start(self, host: str) -> None:
        """Listen on `host`; GatewayStartError when it is not an address of this machine or cannot be bound."""
        if self._server is not None:
            raise RuntimeError("the gateway listener is already running; stop() it first")
        http_socket = _bind(host)
        try:
            proxy_socket = _bind(host)
        except GatewayStartError:
            http_socket.close()
            raise
        self._http_port = http_socket.getsockname()[1]
        self._proxy_port = proxy_socket.getsockname()[1]
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, connect=_CONNECT_TIMEOUT_S),
            # Every running turn holds one upstream connection for as long as its answer streams.
            connector=aiohttp.TCPConnector(limit=0),
        )
        self._proxy = EgressProxy(self._backend, address_allowed=self._address_allowed,
                                  blocked_addresses=(*self._blocked, *_own_address(host)))
        await self._proxy.start(proxy_socket)
        await self._start_http(http_socket)

    async def _start_http(self, sock: socket.socket) -> None:
        app = build_gateway(self._backend, self._prices, self._upstreams, self._current_session)
        # access_log=False silences uvicorn's access logger process-wide; the main server runs with it off too.
        config = uvicorn.Config(app, lifespan="off", log_config=None, access_log=False, server_header=False,
                                date_header=False, ws="none", timeout_graceful_shutdown=_SHUTDOWN_GRACE_S)
        server = self._server = _EmbeddedServer(config)
        serving = self._serving = asyncio.create_task(server.serve(sockets=[sock]), name="gateway-http")
        while not server.started:
            if serving.done():
                sock.close()
                await self.stop()
                raise GatewayStartError(f"the model gateway failed to start: {serving.exception()!r}")
            await asyncio.sleep(0.01)

    def _current_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("the gateway listener is not running")
        return self._session

    async def stop(self) -> None:
        """Stop both listeners, cut open tunnels and answers, close the upstream session (idempotent)."""
        if self._server is not None and self._serving is not None:
            self._server.should_exit = True
            await asyncio.gather(self._serving, return_exceptions=True)
        self._server = self._serving = None
        if self._proxy is not None:
            await self._proxy.stop()
            self._proxy = None
        if self._session is not None:
            await self._session.close()
            self._session = None


def _bind(host: str) -> socket.socket:
    """A listening TCP socket on host and a port the OS picks."""
    try:
        infos = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise GatewayStartError(f"the model gateway cannot resolve {host!r}: {exc.strerror or exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise GatewayStartError(
            f"the model gateway cannot listen on {host}: {exc.strerror or exc} — is {host} an address of this "
            "machine (for containers: the Docker bridge's gateway address, e.g. 172.17.0.1)?") from exc
    return sock


def _own_address(host: str) -> tuple[Address, ...]:
    """The listening address itself, which tunnels must not reach (unless it is a wildcard)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return ()
    return () if address.is_unspecified else (address,)
