"""GET /metrics: the Prometheus text format, for a scraper holding AICODE_METRICS_TOKEN (or, with no
token set, for clients on this machine only)."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import shutil
from typing import Any

from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from aicode.containers.engine import DockerEngine
from aicode.errors import AicodeError, AuthenticationError, ForbiddenError
from aicode.metrics.instruments import DATA_DISK_FREE, DOCKER_UP, QUEUED, RUNNING
from aicode.tasks.queue_repo import TaskQueueRepo

__all__ = ["MetricsController"]

_ENGINE_TIMEOUT_S = 2.0


def _loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class MetricsController(Controller):
    include_in_schema = False

    @get("/metrics", exclude_from_auth=True)
    async def metrics(self, request: Request[Any, Any, Any], task_queue: NamedDependency[TaskQueueRepo],
                      docker_engine: NamedDependency[DockerEngine]) -> Response[bytes]:
        """Every aicode_* metric, HTTP request durations by route template, and the process's own."""
        settings = request.app.state.settings
        token = settings.metrics_token
        if token:
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
                raise AuthenticationError("send AICODE_METRICS_TOKEN as 'Authorization: Bearer <token>'")
        elif not _loopback(request.client.host if request.client else None):
            raise ForbiddenError("/metrics answers clients on this machine only: set AICODE_METRICS_TOKEN to scrape "
                                 "it from elsewhere")
        QUEUED.set(await task_queue.count_queued())
        RUNNING.set(request.app.state.supervisor.running)
        try:
            await docker_engine.ping(timeout=_ENGINE_TIMEOUT_S)
            DOCKER_UP.set(1)
        except AicodeError:
            DOCKER_UP.set(0)
        DATA_DISK_FREE.set((await asyncio.to_thread(shutil.disk_usage, settings.data_dir)).free)
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
