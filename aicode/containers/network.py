"""The agent network: an internal Docker network on which the only thing a container can reach is the
model gateway, and the address on it where the gateway listens.

The network is made at start-up if missing (`--internal`: no route out through Docker; no traffic
between containers, where the engine enforces it with iptables), labelled as aicode's. On it, the
host is reachable at the network's gateway address; a server that itself runs in a container
joined to the network listens on its own address there instead.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from dataclasses import dataclass
from typing import Any

import aiodocker
import aiohttp
import structlog

from aicode.containers.engine import DockerEngine

__all__ = ["AgentNetwork", "AgentNetworkError", "NetworkPlace"]

log = structlog.get_logger(__name__)

LABEL = "org.aicode.network"


class AgentNetworkError(Exception):
    """The agent network cannot be made or used; the message says what to do."""


@dataclass(frozen=True, slots=True)
class NetworkPlace:
    """Where the gateway must listen (`address`) and what containers call it (the same address)."""

    network: str
    address: str


def _can_bind(address: str) -> bool:
    family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((address, 0))
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL:
                return False
            raise
    return True


class AgentNetwork:
    def __init__(self, engine: DockerEngine, name: str) -> None:
        self._engine = engine
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    async def ensure(self) -> NetworkPlace:
        """Make the network if needed and answer where the gateway listens on it."""
        try:
            info = await self._inspect() or await self._create()
        except (aiohttp.ClientError, OSError) as exc:
            raise AgentNetworkError(self._engine.unreachable(exc).detail) from None
        if not info.get("Internal"):
            raise AgentNetworkError(
                f"the Docker network {self._name!r} exists but is not internal (it would let agents reach the "
                "internet): remove it (docker network rm) so aicode can make it, or set AICODE_AGENT_NETWORK")
        address = self._host_address(info) or await self._own_address(info)
        return NetworkPlace(network=self._name, address=address)

    async def _inspect(self) -> dict[str, Any] | None:
        try:
            network = await self._engine.client.networks.get(self._name)
            return await network.show()
        except aiodocker.DockerError as exc:
            if exc.status == 404:
                return None
            raise AgentNetworkError(f"could not inspect the Docker network {self._name!r}: {exc.message}") from None

    async def _create(self) -> dict[str, Any]:
        config = {
            "Name": self._name, "Driver": "bridge", "Internal": True, "CheckDuplicate": True,
            "Labels": {LABEL: "agents"},
            "Options": {"com.docker.network.bridge.enable_icc": "false"},
        }
        try:
            await self._engine.client.networks.create(config)
        except aiodocker.DockerError as exc:
            if exc.status != 409:  # made meanwhile by another aicode process: fine
                raise AgentNetworkError(f"could not create the Docker network {self._name!r}: {exc.message}") from None
        else:
            log.info("agent_network.created", network=self._name)
        info = await self._inspect()
        if info is None:
            raise AgentNetworkError(f"the Docker network {self._name!r} vanished while it was being set up")
        return info

    @staticmethod
    def _host_address(info: dict[str, Any]) -> str | None:
        """The network's gateway address, when it is an address of this host (aicode runs on the host)."""
        gateways = [c.get("Gateway") for c in (info.get("IPAM") or {}).get("Config") or [] if c.get("Gateway")]
        return next((gateway for gateway in gateways if _can_bind(gateway)), None)

    async def _own_address(self, info: dict[str, Any]) -> str:
        """aicode runs in a container of this engine: join it to the network and answer its address there."""
        own = socket.gethostname()  # Docker names a container's host after its id
        for container_id, endpoint in (info.get("Containers") or {}).items():
            if container_id.startswith(own) and endpoint.get("IPv4Address"):
                address: str = endpoint["IPv4Address"]
                return address.split("/")[0]
        try:
            container = await self._engine.client.containers.get(own)
            network = await self._engine.client.networks.get(self._name)
            await network.connect({"Container": container.id})
        except aiodocker.DockerError as exc:
            raise AgentNetworkError(
                f"cannot listen on the Docker network {self._name!r}: aicode is not on the Docker host and could "
                f"not join the network itself ({exc.message}); run it on the host, or join its container to the "
                f"network (docker network connect {self._name} <aicode container>)") from None
        log.info("agent_network.joined", network=self._name, container=own)
        joined = await self._inspect() or {}
        for container_id, endpoint in (joined.get("Containers") or {}).items():
            if container_id.startswith(container.id[:12]) and endpoint.get("IPv4Address"):
                address = endpoint["IPv4Address"]
                return address.split("/")[0]
        raise AgentNetworkError(f"joined the Docker network {self._name!r} but got no address on it")
