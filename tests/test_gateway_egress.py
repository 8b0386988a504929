"""The egress proxy: CONNECT tunnels to listed hosts only, never to this host, metadata or unlisted ports."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import socket
from collections.abc import AsyncIterator, Callable

import pytest

from aicode.gateway.egress import Address, EgressProxy, default_address_allowed, egress_allows
from aicode.gateway.listener import GatewayListener
from aicode.gateway.prices import PriceTable
from tests.test_gateway import InMemoryGatewayBackend

TOKEN = "egress-token-0123456789"
# The gateway listens on 127.0.0.1 (which tunnels may never reach); test targets live on 127.0.0.2.
TARGET_HOST = "127.0.0.2"


def loopback_allowed(address: Address) -> bool:
    """The default policy, except that test targets on loopback are reachable."""
    return address.is_loopback or default_address_allowed(address)


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    """A TCP server on 127.0.0.2 that sends back whatever it receives."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, TARGET_HOST, 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
def backend(echo_port: int) -> InMemoryGatewayBackend:
    backend = InMemoryGatewayBackend()
    backend.add_grant(TOKEN, egress_allow=(f"{TARGET_HOST}:{echo_port}", "*.example.org"))
    return backend


async def started_proxy(backend: InMemoryGatewayBackend,
                        address_allowed: Callable[[Address], bool] = loopback_allowed,
                        blocked: tuple[Address, ...] = ()) -> tuple[EgressProxy, int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    sock.setblocking(False)
    proxy = EgressProxy(backend, address_allowed=address_allowed, blocked_addresses=blocked)
    await proxy.start(sock)
    return proxy, sock.getsockname()[1]


@pytest.fixture
async def proxy_port(backend: InMemoryGatewayBackend) -> AsyncIterator[int]:
    proxy, port = await started_proxy(backend)
    try:
        yield port
    finally:
        await proxy.stop()


def basic(token: str) -> str:
    return "Basic " + base64.b64encode(f"aicode:{token}".encode()).decode()


async def send_head(port: int, head: str) -> tuple[bytes, asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a connection to the proxy, send a request head, return the proxy's answer head."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head.encode())
    await writer.drain()
    answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    return answer, reader, writer


async def connect(port: int, target: str, token: str | None = TOKEN) -> tuple[int, str, bytes]:
    """A CONNECT that the test expects refused: status, body and answer head."""
    auth = f"Proxy-Authorization: {basic(token)}\r\n" if token else ""
    answer, reader, writer = await send_head(port, f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{auth}\r\n")
    body = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    await writer.wait_closed()
    return int(answer.split(b" ")[1]), body.decode(), answer


async def test_listed_target_is_tunnelled(proxy_port: int, echo_port: int) -> None:
    target = f"{TARGET_HOST}:{echo_port}"
    answer, reader, writer = await send_head(
        proxy_port, f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nProxy-Authorization: {basic(TOKEN)}\r\n\r\n")
    try:
        assert answer.startswith(b"HTTP/1.1 200 ")
        payload = bytes(range(256)) * 1024
        writer.write(payload)
        await writer.drain()
        echoed = await asyncio.wait_for(reader.readexactly(len(payload)), 10)
        assert echoed == payload
    finally:
        writer.close()
        await writer.wait_closed()


async def test_unlisted_host_is_refused_with_reason(backend: InMemoryGatewayBackend, proxy_port: int) -> None:
    status, body, _ = await connect(proxy_port, "evil.example.com:443")
    assert status == 403
    assert "evil.example.com:443 is not in this task's egress_allow" in body
    assert backend.egress_refusals == [(backend.grants[TOKEN], "evil.example.com:443", body.strip())]


async def test_unlisted_port_is_refused(proxy_port: int, echo_port: int) -> None:
    status, body, _ = await connect(proxy_port, f"{TARGET_HOST}:{echo_port + 1}")
    assert status == 403 and "egress_allow" in body


async def test_loopback_is_refused_by_the_default_policy(backend: InMemoryGatewayBackend, echo_port: int) -> None:
    proxy, port = await started_proxy(backend, address_allowed=default_address_allowed)
    try:
        status, body, _ = await connect(port, f"{TARGET_HOST}:{echo_port}")
    finally:
        await proxy.stop()
    assert status == 403 and "an address tunnels may not reach" in body


async def test_listed_name_resolving_to_loopback_is_refused(backend: InMemoryGatewayBackend) -> None:
    backend.add_grant("names", egress_allow=("localhost",))
    proxy, port = await started_proxy(backend, address_allowed=default_address_allowed)
    try:
        status, body, _ = await connect(port, "localhost:443", token="names")
    finally:
        await proxy.stop()
    assert status == 403 and "resolves to" in body


async def test_blocked_address_is_refused_even_when_the_policy_allows_it(backend: InMemoryGatewayBackend,
                                                                          echo_port: int) -> None:
    proxy, port = await started_proxy(backend, blocked=(ipaddress.ip_address(TARGET_HOST),))
    try:
        status, _, _ = await connect(port, f"{TARGET_HOST}:{echo_port}")
    finally:
        await proxy.stop()
    assert status == 403


async def test_missing_credentials_get_407(backend: InMemoryGatewayBackend, proxy_port: int, echo_port: int) -> None:
    status, _, answer = await connect(proxy_port, f"{TARGET_HOST}:{echo_port}", token=None)
    assert status == 407
    assert b'Proxy-Authenticate: Basic realm="aicode"' in answer
    assert backend.egress_refusals[0][0] is None


async def test_unknown_token_gets_407(proxy_port: int, echo_port: int) -> None:
    status, _, _ = await connect(proxy_port, f"{TARGET_HOST}:{echo_port}", token="not-a-token")
    assert status == 407


async def test_plain_http_request_is_refused(proxy_port: int, echo_port: int) -> None:
    answer, reader, writer = await send_head(
        proxy_port, f"GET http://{TARGET_HOST}:{echo_port}/ HTTP/1.1\r\nHost: {TARGET_HOST}\r\n"
                    f"Proxy-Authorization: {basic(TOKEN)}\r\n\r\n")
    body = await reader.read()
    writer.close()
    await writer.wait_closed()
    assert answer.startswith(b"HTTP/1.1 403 ")
    assert b"only HTTPS (CONNECT) is proxied" in body


async def test_oversized_request_head_is_refused(proxy_port: int) -> None:
    answer, _, writer = await send_head(proxy_port, "CONNECT a.example.org:443 HTTP/1.1\r\n"
                                             + "X-Filler: " + "y" * 20_000 + "\r\n\r\n")
    writer.close()
    await writer.wait_closed()
    assert answer.startswith(b"HTTP/1.1 431 ")


async def test_stop_cuts_open_tunnels(backend: InMemoryGatewayBackend, echo_port: int) -> None:
    proxy, port = await started_proxy(backend)
    target = f"{TARGET_HOST}:{echo_port}"
    answer, reader, writer = await send_head(
        port, f"CONNECT {target} HTTP/1.1\r\nProxy-Authorization: {basic(TOKEN)}\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 ")
    await asyncio.wait_for(proxy.stop(), 5)
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    await writer.wait_closed()


async def test_listener_proxy_tunnels_but_never_to_its_own_address(backend: InMemoryGatewayBackend,
                                                                   echo_port: int) -> None:
    backend.add_grant("own", egress_allow=(f"127.0.0.1:{echo_port}",))
    listener = GatewayListener(backend, PriceTable.load(), upstream="http://127.0.0.1:9",
                               address_allowed=loopback_allowed)
    await listener.start("127.0.0.1")
    try:
        answer, _, writer = await send_head(
            listener.proxy_port,
            f"CONNECT {TARGET_HOST}:{echo_port} HTTP/1.1\r\nProxy-Authorization: {basic(TOKEN)}\r\n\r\n")
        writer.close()
        await writer.wait_closed()
        status, body, _ = await connect(listener.proxy_port, f"127.0.0.1:{echo_port}", token="own")
    finally:
        await listener.stop()
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert status == 403 and "127.0.0.1" in body


@pytest.mark.parametrize(("host", "port", "allowed"), [
    ("api.github.com", 443, True),
    ("API.GitHub.com.", 443, True),
    ("api.github.com", 80, False),
    ("registry.npmjs.org", 8443, True),
    ("registry.npmjs.org", 443, False),
    ("a.b.pypi.org", 443, True),
    ("pypi.org", 443, False),
    ("evilpypi.org", 443, False),
    ("10.0.0.5", 443, True),
    ("::1", 8080, True),
    ("github.com", 443, False),
])
def test_egress_allow_patterns(host: str, port: int, allowed: bool) -> None:
    patterns = ("api.github.com", "registry.npmjs.org:8443", "*.PYPI.org", "10.0.0.5", "[::1]:8080")
    assert egress_allows(patterns, host, port) is allowed


@pytest.mark.parametrize(("address", "allowed"), [
    ("127.0.0.1", False), ("169.254.169.254", False), ("0.0.0.0", False), ("0.1.2.3", False),
    ("224.0.0.1", False), ("::1", False), ("fe80::1", False), ("::ffff:127.0.0.1", False), ("::", False),
    ("140.82.112.3", True), ("10.1.2.3", True), ("2606:4700::1", True),
])
def test_default_address_policy(address: str, allowed: bool) -> None:
    assert default_address_allowed(ipaddress.ip_address(address)) is allowed
