"""The connection to the Docker engine, opened and closed by the app's lifespan."""

from __future__ import annotations

import asyncio

import aiodocker

from aicode.errors import UnavailableError

__all__ = ["DockerEngine"]

_DEFAULT_URL = "unix:///var/run/docker.sock"


class DockerEngine:
    def __init__(self, url: str | None) -> None:
        self.url = url or _DEFAULT_URL
        self._client: aiodocker.Docker | None = None

    async def open(self) -> None:
        # aiodocker opens an aiohttp session, which must be made inside the running loop.
        self._client = aiodocker.Docker(url=self.url)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    @property
    def client(self) -> aiodocker.Docker:
        if self._client is None:
            raise UnavailableError("the Docker client is not open")
        return self._client

    def unreachable(self, exc: BaseException) -> UnavailableError:
        return UnavailableError(
            f"Docker engine not reachable at {self.url} ({exc.__class__.__name__}: {exc}) — is dockerd running? "
            "set AICODE_DOCKER_URL to use another engine"
        )

    async def ping(self, timeout: float = 3.0) -> str:
        """The engine's version, or UnavailableError saying what to do."""
        try:
            async with asyncio.timeout(timeout):
                version = await self.client.version()
        except (aiodocker.DockerError, OSError, TimeoutError, ValueError) as exc:
            raise self.unreachable(exc) from None
        return str(version.get("Version", "unknown"))
