"""Repository remotes: no fetching from the server's own networks, and a silent remote harms only itself."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator

import pytest
from litestar.testing import AsyncTestClient

from aicode.app import create_app
from aicode.settings import Settings
from aicode.workspaces.remotes import check_remote_host
from tests.conftest import ADMIN, login, make_user, wait_for_status
from tests.tasks_support import finished, submit

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("url", ["https://127.0.0.1/x.git", "https://localhost/x.git", "https://10.1.2.3/x.git",
                                 "https://192.168.0.10:8443/x.git", "https://169.254.169.254/latest",
                                 "https://[::1]/x.git", "https://100.64.0.1/x.git", "https://0.0.0.0/x.git"])
async def test_a_remote_on_a_local_or_private_network_is_refused(client, alice, url: str) -> None:
    response = await client.post("/api/workspaces", json={"name": "p", "repo_url": url}, headers=alice)
    assert response.status_code == 400
    assert "AICODE_ALLOWED_GIT_HOSTS" in response.json()["detail"]


def test_an_admin_may_allow_a_local_host_by_name_or_with_its_port() -> None:
    check_remote_host("https://127.0.0.1/x.git", ("127.0.0.1",))
    check_remote_host("https://git.internal:8443/x.git", ("git.internal:8443",))
    with pytest.raises(Exception, match="AICODE_ALLOWED_GIT_HOSTS"):
        check_remote_host("https://127.0.0.1:9/x.git", ("127.0.0.1:8443",))


async def test_plain_http_only_where_the_admin_allows_insecure_remotes(settings: Settings, client, alice) -> None:
    refused = await client.post("/api/workspaces", json={"name": "p", "repo_url": "http://example.com/x.git"},
                                headers=alice)
    assert refused.status_code == 400 and "https" in refused.json()["detail"]
    insecure = dataclasses.replace(settings, allow_insecure_remotes=True)
    async with AsyncTestClient(app=create_app(insecure)) as other:
        admin = await login(other, *ADMIN)
        created = await other.post("/api/workspaces", json={"name": "p", "repo_url": "http://example.com/x.git"},
                                   headers=admin)
        assert created.status_code == 201 and created.json()["repo_url"] == "http://example.com/x.git"


@pytest.fixture
async def silent_remote() -> AsyncIterator[str]:
    """An https URL whose server accepts connections and never says a word."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"https://127.0.0.1:{port}/team/repo.git"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


@pytest.mark.serial  # a sign-in timed to 2 s: argon2 hashing shares the CPU with other tests
async def test_a_silent_remote_stalls_neither_sign_in_nor_other_workspaces_work(
    task_settings: Settings, source_repo, silent_remote: str
) -> None:
    settings = dataclasses.replace(task_settings, allowed_git_hosts=("127.0.0.1",))
    async with AsyncTestClient(app=create_app(settings)) as client:
        admin = await login(client, *ADMIN)
        alice = await make_user(client, admin, "alice")
        await client.put("/api/me/credentials/anthropic", json={"api_key": "sk-test-alice"}, headers=alice)
        stuck = [(await client.post("/api/workspaces", json={"name": f"silent{n}", "repo_url": silent_remote},
                                    headers=alice)).json() for n in range(3)]
        # A fourth clone of the same person's waits its turn: 429, whatever the fetch pool could take.
        fourth = await client.post("/api/workspaces", json={"name": "silent4", "repo_url": silent_remote},
                                   headers=alice)
        assert fourth.status_code == 429 and fourth.headers["retry-after"]
        started = time.perf_counter()
        await login(client, "alice", "alice-password")
        assert time.perf_counter() - started < 2
        local = (await client.post("/api/workspaces", json={"name": "local", "repo_url": str(source_repo)},
                                   headers=admin)).json()
        assert (await wait_for_status(client, admin, local["id"]))["status"] == "ready"
        await client.put("/api/me/credentials/anthropic", json={"api_key": "sk-test-admin"}, headers=admin)
        task = await finished(client, admin, (await submit(client, admin, local["id"], "@write a.txt a"))["id"])
        assert task["status"] == "succeeded" and task["head_commit"]
        for workspace in stuck:
            assert (await client.get(f"/api/workspaces/{workspace['id']}", headers=alice)).json()["status"] \
                == "cloning"
