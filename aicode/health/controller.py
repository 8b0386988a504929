"""`/healthz` says the process is up; `/readyz` says whether it can do work, and if not, why."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from aicode.containers.engine import DockerEngine
from aicode.db.pool import Database
from aicode.errors import AicodeError
from aicode.tasks.retention import DiskFloor

__all__ = ["HealthController"]


class HealthController(Controller):
    tags = ["operations"]

    @get("/healthz", exclude_from_auth=True)
    async def healthz(self) -> dict[str, str]:
        """The process is up and serving requests."""
        return {"status": "ok"}

    @get("/readyz", exclude_from_auth=True)
    async def readyz(self, database: NamedDependency[Database], docker_engine: NamedDependency[DockerEngine],
                     disk_floor: NamedDependency[DiskFloor]) -> Response[dict[str, Any]]:
        """The database and the Docker engine are reachable; a 503 names the one that is not. `warnings`
        says what will soon stop work (a nearly full data disk)."""
        checks: dict[str, str] = {}
        problems: list[str] = []
        try:
            await database.ping()
            checks["database"] = "ok"
        except Exception as exc:  # any failure means not ready; the reason goes in the answer
            checks["database"] = "unreachable"
            problems.append(f"database: {exc.__class__.__name__}: {exc}")
        try:
            checks["docker"] = f"ok (engine {await docker_engine.ping()})"
        except AicodeError as exc:
            checks["docker"] = "unreachable"
            problems.append(f"docker: {exc.detail}")
        disk = await disk_floor.warning()
        checks["disk"] = "low" if disk else "ok"
        warnings = [f"disk: {disk}"] if disk else []
        if problems:
            body = {"status_code": 503, "detail": "not ready: " + "; ".join(problems), "checks": checks,
                    "warnings": warnings}
            return Response(body, status_code=HTTP_503_SERVICE_UNAVAILABLE)
        return Response({"status": "ready", "checks": checks, "warnings": warnings}, status_code=HTTP_200_OK)
