"""Where a task container can connect, per network policy: the allowlist proxy's tunnels, the gateway
network's single reachable address, no network at all, and the admins' open networks."""

from __future__ import annotations

import asyncio
import dataclasses
import fcntl
import os
import socket
import struct
import uuid
from collections.abc import AsyncIterator

import aiodocker
import pytest

from aicode.settings import Settings
from tests.conftest import ADMIN, login
from tests.tasks_support import events, finished, of_type, submit
from tests.test_boundary_gateway import probe_output, python_in_container

pytestmark = pytest.mark.timeout(120)

IMAGE = os.environ.get("AICODE_TEST_IMAGE", "aicode-workspace:test")
TARGET_PORT = 8000

# Opens CONNECT tunnels through the proxy named by $HTTPS_PROXY, authenticating as it says.
_PROXY_CLIENT = r"""
import base64, os, socket
from urllib.parse import urlsplit
PROXY = urlsplit(os.environ["HTTPS_PROXY"])
CREDENTIALS = base64.b64encode(f"{PROXY.username}:{PROXY.password}".encode()).decode()
def status_line(sock):
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    return head.split(b"\r\n")[0].decode()
def tunnel(target):
    sock = socket.create_connection((PROXY.hostname, PROXY.port), timeout=30)
    sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
                 f"Proxy-Authorization: Basic {CREDENTIALS}\r\n\r\n".encode())
    return sock, status_line(sock).split(" ")[1]
"""

# `probe(host, port)` prints "host:port open" or "host:port closed"; GATEWAY is where the gateway listens.
_CONNECT_PROBE = """\
import os, socket
from urllib.parse import urlsplit
GATEWAY = urlsplit(os.environ["ANTHROPIC_BASE_URL"])
def probe(host, port):
    try:
        socket.create_connection((host, port), timeout=3).close()
        print(f"{host}:{port} open")
    except OSError:
        print(f"{host}:{port} closed")
"""


async def _answers(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection(host, port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


@pytest.fixture
async def target() -> AsyncIterator[str]:
    """The address of an HTTP server on port 8000, in a container on a bridge network of the test's own."""
    name = f"aicode-test-target-{uuid.uuid4().hex[:8]}"
    async with aiodocker.Docker() as docker:
        network = await docker.networks.create({"Name": name, "Driver": "bridge"})
        try:
            container = await docker.containers.run(
                {"Image": IMAGE, "Cmd": ["python3", "-m", "http.server", str(TARGET_PORT), "--directory", "/tmp"],
                 "HostConfig": {"NetworkMode": name}}, name=name)
            try:
                address = (await container.show())["NetworkSettings"]["Networks"][name]["IPAddress"]
                async with asyncio.timeout(20):
                    while not await _answers(address, TARGET_PORT):
                        await asyncio.sleep(0.1)
                yield address
            finally:
                await container.delete(force=True)
        finally:
            await network.delete()


@pytest.fixture
async def host_listener() -> AsyncIterator[int]:
    """A port on which this host accepts connections on all its addresses."""

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(hang_up, "0.0.0.0", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def _host_ipv4_addresses() -> set[str]:
    """This host's IPv4 interface addresses, loopback excepted (Linux: SIOCGIFADDR per interface)."""
    found = set()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _, interface in socket.if_nameindex():
            try:
                answer = fcntl.ioctl(sock.fileno(), 0x8915, struct.pack("256s", interface.encode()[:15]))
            except OSError:
                continue  # an interface without an IPv4 address
            found.add(socket.inet_ntoa(answer[20:24]))
    return {address for address in found if not address.startswith("127.")}


async def _task_container(task_id: str) -> dict:
    async with aiodocker.Docker() as docker, asyncio.timeout(20):
        while True:
            found = await docker.containers.list(filters={"label": [f"aicode.task={task_id}"]})
            if found:
                return await found[0].show()
            await asyncio.sleep(0.05)


@pytest.fixture
def task_settings(task_settings: Settings) -> Settings:
    """Tasks default to no network; Docker's own `bridge` is an open network admins may choose."""
    return dataclasses.replace(task_settings, open_networks=("bridge",))


# -- allowlist: CONNECT through the gateway's proxy, to the listed hosts only --------------------------


async def _with_network(task_app, workspace, network: str, **fields: object) -> tuple[dict, dict[str, str]]:
    """Alice's workspace, switched by alice to `network`."""
    ws, alice = workspace
    patched = await task_app.patch(f"/api/workspaces/{ws['id']}", json={"network": network, **fields}, headers=alice)
    assert patched.status_code == 200, patched.text
    return ws, alice


async def test_a_listed_host_and_port_is_reached_through_the_proxy(task_app, workspace, target: str) -> None:
    ws, alice = await _with_network(task_app, workspace, "allowlist", egress_allow=[f"{target}:{TARGET_PORT}"])
    script = _PROXY_CLIENT + rf"""
sock, status = tunnel("{target}:{TARGET_PORT}")
print("CONNECT", status)
sock.sendall(b"GET / HTTP/1.0\r\nHost: {target}\r\n\r\n")
print("GET", status_line(sock).split(" ")[1])
"""
    task = await finished(task_app, alice, (await submit(task_app, alice, ws["id"], python_in_container(script)))["id"])
    assert task["status"] == "succeeded", task
    assert probe_output(await events(task_app, alice, task["id"])) == ["CONNECT 200", "GET 200"]


async def test_a_listed_host_on_an_unlisted_port_is_refused(task_app, workspace, target: str) -> None:
    ws, alice = await _with_network(task_app, workspace, "allowlist", egress_allow=[f"{target}:{TARGET_PORT}"])
    script = _PROXY_CLIENT + f'print("CONNECT", tunnel("{target}:{TARGET_PORT + 1}")[1])\n'
    task = await finished(task_app, alice, (await submit(task_app, alice, ws["id"], python_in_container(script)))["id"])
    assert probe_output(await events(task_app, alice, task["id"])) == ["CONNECT 403"]


async def test_an_unlisted_host_is_refused_and_the_refusal_is_reported(task_app, workspace, target: str) -> None:
    ws, alice = await _with_network(task_app, workspace, "allowlist", egress_allow=[f"{target}:{TARGET_PORT}"])
    script = _PROXY_CLIENT + 'print("CONNECT", tunnel("example.com:443")[1])\n'
    task = await finished(task_app, alice, (await submit(task_app, alice, ws["id"], python_in_container(script)))["id"])
    assert probe_output(await events(task_app, alice, task["id"])) == ["CONNECT 403"]
    # The notice is posted beside the turn, not in its final transaction: give it a moment.
    async with asyncio.timeout(10):
        while not (refused := [n for n in of_type(await events(task_app, alice, task["id"]), "notice")
                               if n["data"]["code"] == "egress_refused"]):
            await asyncio.sleep(0.1)
    assert "example.com:443" in refused[0]["data"]["message"]


# -- gateway ---------------------------------------------------------------------------------------


async def test_on_the_gateway_network_only_the_gateway_address_answers(
    task_app, workspace, target: str, host_listener: int
) -> None:
    ws, alice = await _with_network(task_app, workspace, "gateway")
    # The target container, and a port open on every address of this host but the gateway's own.
    others = [(target, TARGET_PORT), *((address, host_listener) for address in sorted(_host_ipv4_addresses()))]
    script = _CONNECT_PROBE + f"""\
probe(GATEWAY.hostname, GATEWAY.port)
for host, port in {others!r}:
    if host != GATEWAY.hostname:
        probe(host, port)
"""
    task = await finished(task_app, alice, (await submit(task_app, alice, ws["id"], python_in_container(script)))["id"])
    assert task["status"] == "succeeded", task
    gateway_line, *rest = probe_output(await events(task_app, alice, task["id"]))
    assert gateway_line.endswith(" open"), gateway_line
    gateway = gateway_line.split(":")[0]
    assert rest == [f"{host}:{port} closed" for host, port in others if host != gateway]


async def test_a_host_service_on_all_addresses_is_not_reachable_through_the_gateway_address(
    task_app, workspace, host_listener: int
) -> None:
    ws, alice = await _with_network(task_app, workspace, "gateway")
    script = _CONNECT_PROBE + f"probe(GATEWAY.hostname, GATEWAY.port)\nprobe(GATEWAY.hostname, {host_listener})\n"
    task = await finished(task_app, alice, (await submit(task_app, alice, ws["id"], python_in_container(script)))["id"])
    gateway_line, host_service_line = probe_output(await events(task_app, alice, task["id"]))
    assert gateway_line.endswith(" open")
    assert host_service_line.endswith(f":{host_listener} closed"), host_service_line


# -- none and open ---------------------------------------------------------------------------------


async def test_a_workspace_without_network_runs_its_container_with_network_mode_none(task_app, workspace) -> None:
    ws, alice = await _with_network(task_app, workspace, "none")
    task = await submit(task_app, alice, ws["id"], "@sleep 30")
    info = await _task_container(task["id"])
    await task_app.post(f"/api/tasks/{task['id']}/cancel", headers=alice)
    await finished(task_app, alice, task["id"])
    assert info["HostConfig"]["NetworkMode"] == "none"


async def test_an_admin_may_put_a_workspace_on_an_open_network_where_its_container_runs(task_app, workspace) -> None:
    ws, alice = workspace
    admin = await login(task_app, *ADMIN)
    patched = await task_app.patch(f"/api/workspaces/{ws['id']}", json={"network": "bridge"}, headers=admin)
    assert patched.status_code == 200, patched.text
    task = await submit(task_app, alice, ws["id"], "@sleep 30")
    info = await _task_container(task["id"])
    await task_app.post(f"/api/tasks/{task['id']}/cancel", headers=alice)
    await finished(task_app, alice, task["id"])
    assert info["HostConfig"]["NetworkMode"] == "bridge"
    assert list(info["NetworkSettings"]["Networks"]) == ["bridge"]


async def test_a_member_may_not_choose_an_open_network(task_app, workspace) -> None:
    ws, alice = workspace
    response = await task_app.patch(f"/api/workspaces/{ws['id']}", json={"network": "bridge"}, headers=alice)
    assert response.status_code == 403, response.text


async def test_an_unknown_network_name_is_refused(task_app, workspace) -> None:
    ws, _ = workspace
    admin = await login(task_app, *ADMIN)
    response = await task_app.patch(f"/api/workspaces/{ws['id']}", json={"network": "no-such-network"},
                                    headers=admin)
    assert response.status_code == 400, response.text
