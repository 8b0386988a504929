"""Which network hosts a workspace's repository may live on.

A member gives the URL and the server fetches it, so a URL is a way to make the server connect
somewhere: into its own loopback, the cloud metadata service, or the private network around it. A
remote whose host resolves to a loopback, link-local, private, shared, reserved or multicast
address is refused, unless an admin lists the host in AICODE_ALLOWED_GIT_HOSTS. Checked when the
workspace is added and before every fetch (the address behind a name can change).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from aicode.errors import InvalidInputError

__all__ = ["check_remote_host"]


def _internal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (address.is_loopback or address.is_link_local or address.is_private or address.is_reserved
            or address.is_multicast or address.is_unspecified or address in ipaddress.ip_network("100.64.0.0/10"))


def check_remote_host(url: str, allowed_hosts: tuple[str, ...]) -> None:
    """InvalidInputError unless the URL's host is on the open internet or in `allowed_hosts` (blocking: DNS)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        raise InvalidInputError(f"repo_url {url!r} has an invalid port") from None
    allowed = {entry.lower() for entry in allowed_hosts}
    if host in allowed or (port and f"{host}:{port}" in allowed):
        return
    try:
        infos = socket.getaddrinfo(host, port or 443, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return  # no address at all: the fetch fails on its own, with the usual message
    addresses = {ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos}
    if any(_internal(address) for address in addresses):
        raise InvalidInputError(
            f"the repository host {host!r} is on a local or private network, which this server does not fetch "
            "from: an admin can allow it with AICODE_ALLOWED_GIT_HOSTS")
