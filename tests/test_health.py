from __future__ import annotations

import dataclasses

from litestar.testing import AsyncTestClient

from aicode.app import create_app
from aicode.settings import Settings


async def test_healthz_answers_without_credentials(client: AsyncTestClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_reports_database_and_docker_ok(client: AsyncTestClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    checks = response.json()["checks"]
    assert checks["database"] == "ok"
    assert checks["docker"].startswith("ok (engine ")


async def test_readyz_names_the_unreachable_docker_engine(settings: Settings, tmp_path) -> None:
    broken = dataclasses.replace(settings, docker_url=f"unix://{tmp_path}/no-such.sock")
    async with AsyncTestClient(app=create_app(broken)) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"] == {"database": "ok", "docker": "unreachable", "disk": "ok"}
    assert "Docker engine not reachable" in body["detail"]
    assert "AICODE_DOCKER_URL" in body["detail"]


async def test_openapi_schema_is_served(client: AsyncTestClient) -> None:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/api/workspaces" in paths
    assert "/api/auth/login" in paths
