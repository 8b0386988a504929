"""Leaves a container on the agent network one destination: the gateway's two ports.

Docker keeps an `--internal` network's containers from routing anywhere with iptables rules, and
stops them talking to each other (`enable_icc=false`) the same way. An engine started with
`--iptables=false` applies neither, yet still gives the container a default route via the host:
it could then reach other containers and any address the host routes to. And on any engine the
gateway address is the host's own, so every host service listening on all addresses answers
there. Where the server runs as root next to the engine, it closes both itself: it enters the
container's network namespace (from a thread of its own; `setns` changes only the calling thread),
replaces the IPv4 routes with a single host route to the gateway address (rtnetlink), and adds a
packet filter (nftables, with the host's `nft`) that lets out only TCP to the gateway's HTTP and
proxy ports. The container has no CAP_NET_ADMIN, so it can undo neither. (IPv6 is switched off by
a sysctl at create time.)
"""

from __future__ import annotations

import asyncio
import ctypes
import ipaddress
import os
import shutil
import socket
import struct
import subprocess
import threading
from dataclasses import dataclass

import structlog

from aicode.containers.runtime import ContainerError, ContainerRuntime

__all__ = ["NetworkConfinement", "confine_routes"]

log = structlog.get_logger(__name__)

_CLONE_NEWNET = 0x40000000
_RTM_NEWROUTE, _RTM_DELROUTE, _RTM_GETROUTE = 24, 25, 26
_NLM_F_REQUEST, _NLM_F_ACK, _NLM_F_EXCL, _NLM_F_CREATE, _NLM_F_DUMP = 0x1, 0x4, 0x200, 0x400, 0x300
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_RTA_DST, _RTA_OIF, _RTA_TABLE = 1, 4, 15
_RT_TABLE_MAIN, _RTPROT_BOOT, _RT_SCOPE_LINK, _RTN_UNICAST = 254, 3, 253, 1
_HEADER = struct.Struct("=IHHII")
_RTMSG = struct.Struct("=BBBBBBBBI")

_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True, slots=True)
class _Route:
    dst: ipaddress.IPv4Network
    oif: int | None
    table: int
    raw: bytes  # the rtmsg and attributes, sent back as they came to delete the route


def _attribute(kind: int, data: bytes) -> bytes:
    length = 4 + len(data)
    return struct.pack("=HH", length, kind) + data + b"\0" * ((-length) % 4)


def _attributes(payload: bytes) -> dict[int, bytes]:
    found, offset = {}, _RTMSG.size
    while offset + 4 <= len(payload):
        length, kind = struct.unpack_from("=HH", payload, offset)
        if length < 4:
            break
        found[kind] = payload[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return found


class _Netlink:
    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        self._seq = 0

    def close(self) -> None:
        self._sock.close()

    def request(self, kind: int, flags: int, body: bytes) -> list[bytes]:
        """Send one message; the payloads answered (a dump's entries), raising on a netlink error."""
        self._seq += 1
        self._sock.send(_HEADER.pack(_HEADER.size + len(body), kind, flags, self._seq, 0) + body)
        replies: list[bytes] = []
        while True:
            data = self._sock.recv(1 << 16)
            offset = 0
            while offset + _HEADER.size <= len(data):
                length, reply_kind, _, _, _ = _HEADER.unpack_from(data, offset)
                payload = data[offset + _HEADER.size:offset + length]
                offset += (length + 3) & ~3
                if reply_kind == _NLMSG_DONE:
                    return replies
                if reply_kind == _NLMSG_ERROR:
                    error = struct.unpack_from("=i", payload)[0]
                    if error:
                        raise OSError(-error, os.strerror(-error))
                    return replies
                replies.append(payload)

    def routes(self) -> list[_Route]:
        query = _RTMSG.pack(socket.AF_INET, 0, 0, 0, 0, 0, 0, 0, 0)
        routes = []
        for payload in self.request(_RTM_GETROUTE, _NLM_F_REQUEST | _NLM_F_DUMP, query):
            family, dst_len, _, _, table, _, _, _, _ = _RTMSG.unpack_from(payload)
            attrs = _attributes(payload)
            table = struct.unpack("=I", attrs[_RTA_TABLE])[0] if _RTA_TABLE in attrs else table
            dst = ipaddress.IPv4Address(attrs[_RTA_DST]) if _RTA_DST in attrs else ipaddress.IPv4Address(0)
            oif = struct.unpack("=I", attrs[_RTA_OIF])[0] if _RTA_OIF in attrs else None
            routes.append(_Route(ipaddress.IPv4Network((dst, dst_len), strict=False), oif, table, payload))
        return routes


def _confine(address: ipaddress.IPv4Address) -> None:
    netlink = _Netlink()
    try:
        main = [r for r in netlink.routes() if r.table == _RT_TABLE_MAIN]
        link = next((r for r in main if address in r.dst and r.oif is not None), None)
        if link is None:
            raise OSError(f"no route to the gateway address {address} in the container")
        host_route = ipaddress.IPv4Network(address)
        if not any(r.dst == host_route for r in main):
            body = (_RTMSG.pack(socket.AF_INET, 32, 0, 0, _RT_TABLE_MAIN, _RTPROT_BOOT, _RT_SCOPE_LINK, _RTN_UNICAST, 0)
                    + _attribute(_RTA_DST, address.packed) + _attribute(_RTA_OIF, struct.pack("=I", link.oif)))
            netlink.request(_RTM_NEWROUTE, _NLM_F_REQUEST | _NLM_F_ACK | _NLM_F_CREATE | _NLM_F_EXCL, body)
        for route in main:
            if route.dst != host_route:
                netlink.request(_RTM_DELROUTE, _NLM_F_REQUEST | _NLM_F_ACK, route.raw)
    finally:
        netlink.close()


def _filter(address: ipaddress.IPv4Address, ports: tuple[int, ...]) -> None:
    """Outgoing traffic: loopback, and TCP to the gateway's ports; anything else is refused at once."""
    nft = shutil.which("nft") or next((p for p in ("/usr/sbin/nft", "/sbin/nft") if os.path.exists(p)), None)
    if nft is None:
        raise OSError("nft (nftables) is not installed: cannot filter the agent container's traffic by port")
    allowed = ", ".join(str(port) for port in ports)
    ruleset = (
        "table inet aicode {\n"
        "  chain output {\n"
        "    type filter hook output priority 0; policy accept;\n"
        "    oif lo accept\n"
        f"    ip daddr {address} tcp dport {{ {allowed} }} accept\n"
        "    meta l4proto tcp reject with tcp reset\n"
        "    reject\n"
        "  }\n"
        "}\n"
    )
    # Run from this thread, the child starts in the container's network namespace.
    done = subprocess.run([nft, "-f", "-"], input=ruleset, capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        raise OSError(f"nft refused the agent container's filter: {done.stderr.strip()[:300]}")


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


def confine_routes(pid: int, address: str, ports: tuple[int, ...]) -> None:
    """In the network namespace of process `pid`, keep only a route to `address` and let out only TCP to
    its `ports` (blocking; needs root)."""
    gateway = ipaddress.IPv4Address(address)
    failure: list[BaseException] = []

    def work() -> None:
        # A thread of its own: if returning to our namespace ever failed, only this thread would be lost.
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
            try:
                _confine(gateway)
                _filter(gateway, ports)
            finally:
                _setns(own)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            failure.append(exc)
        finally:
            os.close(own)
            os.close(target)

    thread = threading.Thread(target=work, name=f"confine-{pid}")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


class NetworkConfinement:
    """Confines task containers on the agent network, where this server can (root, local engine)."""

    def __init__(self, runtime: ContainerRuntime, *, enabled: bool) -> None:
        self._runtime = runtime
        self._enabled = enabled
        self._warned = False

    async def confine(self, container_id: str, address: str, ports: tuple[int, ...]) -> None:
        if not self._enabled:
            return
        try:
            pid = await self._runtime.pid(container_id)
            await asyncio.to_thread(confine_routes, pid, address, ports)
        except (OSError, ContainerError, subprocess.SubprocessError) as exc:
            # The engine's own isolation (iptables) still applies; say once that ours could not.
            if not self._warned:
                self._warned = True
                log.warning("containers.confinement_failed", error=str(exc),
                            hint="agent containers rely on the Docker engine's iptables isolation alone")
