"""Network namespaces on the agent network, made ahead of the turns that need them.

Joining a container to a Docker bridge network costs about a third of a second (a new network
namespace, a veth pair, the embedded DNS), where a container that shares an existing namespace
(`NetworkMode: container:<id>`) starts as fast as one on the host network. So, like a Kubernetes
pod's pause container, a tiny "holder" container owns each turn's namespace: it is created,
attached and confined (`NetworkConfinement`) in the background, and a turn's agent container
joins it. A holder serves one turn and is then removed, so no network state passes from one turn
to the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import os

import structlog

from aicode.background import BackgroundTasks
from aicode.containers.confinement import NetworkConfinement
from aicode.containers.policy import ContainerSpec
from aicode.containers.runtime import ContainerError, ContainerRuntime

__all__ = ["NetworkHolders"]

log = structlog.get_logger(__name__)

_HOLDER_MEMORY_MB = 16
_HOLDER_PIDS = 16
_ROLE = {"aicode.role": "network-holder"}


class NetworkHolders:
    """A few ready holders on the agent network; `take` hands one out and starts making its successor."""

    def __init__(self, runtime: ContainerRuntime, confinement: NetworkConfinement, background: BackgroundTasks, *,
                 image: str, server_id: str, spare: int) -> None:
        self._runtime = runtime
        self._confinement = confinement
        self._background = background
        self._image = image
        self._server_id = server_id
        self._spare = spare
        self._ready: asyncio.Queue[str] = asyncio.Queue()
        self._making = 0

    async def take(self, network: str, address: str, ports: tuple[int, ...]) -> str:
        """A holder confined to the gateway at `address`/`ports`: a ready one, or one made now."""
        try:
            holder = self._ready.get_nowait()
        except asyncio.QueueEmpty:
            holder = await self._make(network, address, ports)
        self._refill(network, address, ports)
        return holder

    async def release(self, holder: str) -> None:
        """The turn is over: its namespace goes with its holder."""
        await self._runtime.remove(holder)

    async def close(self) -> None:
        """Remove this server's holders (at shutdown, once no turn runs): ready ones, and any whose
        making was cut short."""
        while not self._ready.empty():
            self._ready.get_nowait()
        with contextlib.suppress(ContainerError):
            for holder in await self._runtime.list_ids({"aicode.server": self._server_id, **_ROLE}):
                await self._runtime.remove(holder)

    def _refill(self, network: str, address: str, ports: tuple[int, ...]) -> None:
        while self._ready.qsize() + self._making < self._spare:
            self._making += 1
            with contextlib.suppress(RuntimeError):  # shutting down: nothing more to prepare
                self._background.spawn(self._make_spare(network, address, ports), name="network-holder")

    async def _make_spare(self, network: str, address: str, ports: tuple[int, ...]) -> None:
        try:
            self._ready.put_nowait(await self._make(network, address, ports))
        except ContainerError as exc:
            log.warning("containers.network_holder_failed", error=str(exc))
        finally:
            self._making -= 1

    async def _make(self, network: str, address: str, ports: tuple[int, ...]) -> str:
        uid = os.getuid() if os.geteuid() != 0 else 65534
        spec = ContainerSpec(
            image=self._image, name=f"aicode-net-{os.urandom(6).hex()}", user=f"{uid}:{uid}",
            labels={"aicode.server": self._server_id, **_ROLE},
            network=network, memory_mb=_HOLDER_MEMORY_MB, cpus=0.1, pids=_HOLDER_PIDS, ipv6=False,
        )
        holder = await self._runtime.start(spec)
        try:
            await self._confinement.confine(holder, address, ports)
        except BaseException:
            await self._runtime.remove(holder)
            raise
        return holder
