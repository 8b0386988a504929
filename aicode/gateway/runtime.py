"""The gateway as the rest of the server uses it: the agent network and the listeners on it, set up on
first need and kept until shutdown."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog

from aicode.containers.network import AgentNetwork, AgentNetworkError
from aicode.gateway.listener import GatewayListener

__all__ = ["GatewayEndpoint", "GatewayRuntime", "GatewayUnavailable"]

log = structlog.get_logger(__name__)


class GatewayUnavailable(Exception):
    """The agent network or the gateway listener could not be set up; the message says what to do."""


@dataclass(frozen=True, slots=True)
class GatewayEndpoint:
    """Where containers on the agent network reach the model gateway and the egress proxy."""

    network: str
    address: str
    http_port: int
    proxy_port: int

    @property
    def base_url(self) -> str:
        return f"http://{self.address}:{self.http_port}"

    def proxy_url(self, token: str) -> str:
        return f"http://aicode:{token}@{self.address}:{self.proxy_port}"


class GatewayRuntime:
    def __init__(self, network: AgentNetwork, listener: GatewayListener) -> None:
        self._network = network
        self._listener = listener
        self._endpoint: GatewayEndpoint | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    async def endpoint(self) -> GatewayEndpoint:
        """The listening endpoint, setting up the network and listeners the first time (and after a failure)."""
        if self._endpoint is not None:
            return self._endpoint
        async with self._lock:
            if self._closed:
                raise GatewayUnavailable("the server is shutting down")
            if self._endpoint is None:
                try:
                    place = await self._network.ensure()
                except AgentNetworkError as exc:
                    raise GatewayUnavailable(f"the agent network is not ready: {exc}") from None
                try:
                    await self._listener.start(place.address)
                except OSError as exc:
                    raise GatewayUnavailable(f"the model gateway cannot listen on {place.address}: {exc}") from None
                self._endpoint = GatewayEndpoint(place.network, place.address, self._listener.http_port,
                                                 self._listener.proxy_port)
                log.info("gateway.listening", network=place.network, address=place.address,
                         http_port=self._listener.http_port, proxy_port=self._listener.proxy_port)
        return self._endpoint

    async def prepare(self) -> None:
        """Set up ahead of the first turn; a failure is logged and retried when a turn needs the gateway."""
        try:
            await self.endpoint()
        except GatewayUnavailable as exc:
            log.warning("gateway.not_ready", error=str(exc))

    async def close(self) -> None:
        # Under the lock: a set-up still under way finishes first, and none starts after.
        async with self._lock:
            self._closed = True
            await self._listener.stop()
            self._endpoint = None
