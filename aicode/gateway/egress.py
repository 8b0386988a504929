"""The egress proxy: HTTP CONNECT tunnels to the hosts a turn's `egress_allow` lists, and nowhere else."""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import re
import socket
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import structlog

from aicode.gateway.models import GatewayBackend, TurnGrant

__all__ = ["Address", "EgressProxy", "default_address_allowed", "egress_allows"]

log = structlog.get_logger(__name__)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_HEADER_BYTES = 16 * 1024
HEADER_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 10.0
_CHUNK = 64 * 1024
_HOSTNAME = re.compile(r"^[a-z0-9_]([a-z0-9_.-]{0,252})$")
# 0.0.0.0/8 is "this network": Linux routes a connect to any of it to the local host.
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")


def default_address_allowed(address: Address) -> bool:
    """False for addresses a tunnel must never reach: this host, link-local (cloud metadata), multicast, reserved."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if isinstance(address, ipaddress.IPv4Address) and address in _THIS_NETWORK:
        return False
    return not (address.is_loopback or address.is_link_local or address.is_unspecified
                or address.is_multicast or address.is_reserved)


@dataclass(frozen=True, slots=True)
class _Target:
    host: str  # lower case, no trailing dot; an IP literal without brackets
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class _Refusal(Exception):
    """A CONNECT the proxy answers with an error status and a one-line reason."""

    def __init__(self, status: int, reason: str, target: str = "", grant: TurnGrant | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.target = target
        self.grant = grant


def egress_allows(patterns: Iterable[str], host: str, port: int) -> bool:
    """Whether an `egress_allow` entry (`host`, `host:port`, `*.suffix`, `*.suffix:port`) admits host:port.

    An entry without a port admits 443 only; `*.example.com` admits subdomains, not example.com itself.
    """
    host = _normal_host(host)
    for pattern in patterns:
        entry_host, entry_port = _split_entry(pattern.strip())
        if entry_port != port or not entry_host:
            continue
        if entry_host == host or (entry_host.startswith("*.") and host.endswith(entry_host[1:])):
            return True
    return False


def _split_entry(entry: str) -> tuple[str, int]:
    if entry.startswith("["):  # [v6] or [v6]:port
        host, _, rest = entry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif entry.count(":") == 1:
        host, _, port = entry.partition(":")
    else:  # a name, or a bare IPv6 literal
        host, port = entry, ""
    if port and not port.isdigit():
        return "", 0
    return _normal_host(host), int(port) if port else 443


def _normal_host(host: str) -> str:
    host = host.strip().lower().rstrip(".")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


class EgressProxy:
    """A CONNECT-only proxy: Basic proxy auth carries the turn's token; tunnels go to checked addresses only."""

    def __init__(self, backend: GatewayBackend, *,
                 address_allowed: Callable[[Address], bool] = default_address_allowed,
                 blocked_addresses: Iterable[Address] = ()) -> None:
        self._backend = backend
        self._address_allowed = address_allowed
        self._blocked = frozenset(blocked_addresses)
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self, sock: socket.socket) -> None:
        """Serve CONNECTs on a bound, listening socket."""
        self._server = await asyncio.start_server(self._accept, sock=sock, limit=MAX_HEADER_BYTES)

    async def stop(self) -> None:
        """Stop accepting, cut every open tunnel and wait for them to end (idempotent)."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._serve(reader, writer)
        except _Refusal as refusal:
            await self._refuse(writer, refusal)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away: nothing to answer
        except Exception as exc:  # a bug must not leave the socket open; its cause goes to the log
            # The stack without exc_info: a renderer that shows locals would print the proxy credentials.
            log.error("egress.failed", error=repr(exc)[:500], stack="".join(traceback.format_tb(exc.__traceback__)))
        finally:
            writer.close()
            self._connections.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        method, authority, headers = await _read_request(reader)
        authority = authority[:300]  # it goes to the log and the task's feed as the target
        grant = await self._grant(headers.get("proxy-authorization", ""))
        if method != "CONNECT":
            raise _Refusal(403, "only HTTPS (CONNECT) is proxied", authority, grant)
        if grant is None:
            raise _Refusal(407, "proxy credentials missing or unknown (HTTPS_PROXY needs the turn's token as "
                           "password)", authority)
        target = _parse_authority(authority, grant)
        if not egress_allows(grant.egress_allow, target.host, target.port):
            raise _Refusal(403, f"{target} is not in this task's egress_allow", str(target), grant)
        upstream_reader, upstream_writer = await self._connect(target, grant)
        try:
            writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            await writer.drain()
            await _splice(reader, writer, upstream_reader, upstream_writer)
        finally:
            upstream_writer.close()

    async def _grant(self, proxy_authorization: str) -> TurnGrant | None:
        scheme, _, encoded = proxy_authorization.strip().partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        _, colon, password = decoded.partition(":")
        token = password if colon else decoded
        return await self._backend.grant_for(token) if token else None

    async def _connect(self, target: _Target,
                       grant: TurnGrant) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection to a checked address of the target: resolved once, so DNS cannot change it after the check."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                infos = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
        except (OSError, TimeoutError) as exc:
            raise _Refusal(502, f"{target.host} could not be resolved", str(target), grant) from exc
        addresses = list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos))
        # Every address must pass: a name resolving to both a reachable and a forbidden address is a
        # rebinding trick, and which one a client would pick is not ours to guess.
        for address in addresses:
            if self._forbidden(address):
                raise _Refusal(403, f"{target} resolves to {address}, an address tunnels may not reach",
                               str(target), grant)
        reason = "timed out"
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                for address in addresses:
                    try:
                        return await asyncio.open_connection(str(address), target.port, limit=_CHUNK)
                    except OSError as exc:
                        reason = exc.strerror or type(exc).__name__
        except TimeoutError:
            reason = "timed out"
        raise _Refusal(502, f"{target} could not be reached ({reason})", str(target), grant)

    def _forbidden(self, address: Address) -> bool:
        mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
        candidates = (address,) if mapped is None else (address, mapped)
        return any(a in self._blocked for a in candidates) or not self._address_allowed(address)

    async def _refuse(self, writer: asyncio.StreamWriter, refusal: _Refusal) -> None:
        grant = refusal.grant
        log.warning("egress.refused", task_id=str(grant.task_id) if grant else None, target=refusal.target,
                    reason=refusal.reason)
        self._backend.egress_refused(grant, refusal.target, refusal.reason)
        body = (refusal.reason + "\n").encode()
        extra = 'Proxy-Authenticate: Basic realm="aicode"\r\n' if refusal.status == 407 else ""
        head = (f"HTTP/1.1 {refusal.status} {_PHRASES.get(refusal.status, 'Error')}\r\n{extra}"
                f"Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n")
        try:
            writer.write(head.encode() + body)
            await writer.drain()
        except ConnectionError:
            pass


_PHRASES = {400: "Bad Request", 403: "Forbidden", 407: "Proxy Authentication Required",
            408: "Request Timeout", 431: "Request Header Fields Too Large", 502: "Bad Gateway"}


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str]]:
    """Method, request target and (lower-cased) headers of one request head, bounded in size and time."""
    try:
        async with asyncio.timeout(HEADER_TIMEOUT_S):
            head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError as exc:
        raise _Refusal(431, f"request head larger than {MAX_HEADER_BYTES} bytes") from exc
    except TimeoutError as exc:
        raise _Refusal(408, f"no complete request head within {HEADER_TIMEOUT_S:.0f} s") from exc
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _Refusal(400, "not an HTTP/1.x request")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return parts[0].upper(), parts[1], headers


def _parse_authority(authority: str, grant: TurnGrant) -> _Target:
    """host:port of a CONNECT, validated: a name of DNS characters or an IP literal, and a port."""
    if authority.startswith("["):
        host, _, rest = authority[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = authority.rpartition(":")
    host = _normal_host(host)
    valid_host = bool(_HOSTNAME.match(host)) or _is_ip(host)
    if not valid_host or not port.isdigit() or not 0 < int(port) < 65536:
        raise _Refusal(400, "CONNECT needs host:port", authority, grant)
    return _Target(host, int(port))


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def _splice(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter,
                  upstream_reader: asyncio.StreamReader, upstream_writer: asyncio.StreamWriter) -> None:
    """Copy both ways until both sides have finished; an error or reset on either side ends both."""
    pumps = [asyncio.create_task(_pump(client_reader, upstream_writer)),
             asyncio.create_task(_pump(upstream_reader, client_writer))]
    try:
        done, _ = await asyncio.wait(pumps, return_when=asyncio.FIRST_EXCEPTION)
        if any(task.exception() for task in done):
            return
        await asyncio.gather(*pumps)
    except ConnectionError:
        pass
    finally:
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """One direction: each read is written and drained before the next (backpressure); EOF is passed on."""
    while data := await reader.read(_CHUNK):
        writer.write(data)
        await writer.drain()
    if writer.can_write_eof():
        writer.write_eof()
