"""A first hour without traps: the workspace image reported and built (API, Admin page, `aicode image build`),
the overview's first-run checklist, and its "New task" form."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiodocker
import pytest
from litestar.testing import AsyncTestClient

from aicode.app import create_app
from aicode.settings import Settings
from tests.conftest import ADMIN, login, make_user, wait_for_status
from tests.tasks_support import finished

pytestmark = pytest.mark.timeout(180)


async def _remove_image(tag: str) -> None:
    async with aiodocker.Docker() as docker:
        try:
            await docker.images.delete(tag, force=True)
        except aiodocker.DockerError:
            pass


@pytest.fixture
async def builder_app(settings: Settings, fake_image: str, tmp_path: Path) -> AsyncIterator[tuple[AsyncTestClient, str]]:
    """An app whose default image does not exist yet, with a Containerfile that builds it from a local image
    (the real one pulls its base images, which this machine cannot)."""
    tag = f"aicode-test-built:{uuid.uuid4().hex[:8]}"
    containerfile = tmp_path / "Containerfile"
    containerfile.write_text(f"FROM {fake_image} AS workspace\nLABEL aicode.test=built\nRUN echo built-step\n"
                             "FROM scratch AS other\n")
    app = create_app(dataclasses.replace(settings, workspace_image=tag, containerfile=containerfile))
    try:
        async with AsyncTestClient(app=app) as client:
            yield client, tag
    finally:
        await _remove_image(tag)


async def _follow_build(client: AsyncTestClient, headers: dict[str, str]) -> tuple[dict, list[str]]:
    lines: list[str] = []
    seen = 0
    async with asyncio.timeout(120):
        while True:
            image = (await client.get("/api/admin/image", params={"after": seen}, headers=headers)).json()
            lines += image["build"]["lines"]
            seen = image["build"]["line_count"]
            if image["build"]["state"] != "running":
                return image, lines
            await asyncio.sleep(0.2)


async def test_an_admin_sees_the_image_missing_builds_it_with_progress_and_then_it_is_there(builder_app) -> None:
    client, tag = builder_app
    admin = await login(client, *ADMIN)
    before = (await client.get("/api/admin/image", headers=admin)).json()
    assert before["image"] == tag and before["present"] is False and before["build"] is None
    assert "not on this server's Docker engine" in before["problem"]
    started = await client.post("/api/admin/image/build", headers=admin)
    assert started.status_code == 202, started.text
    assert started.json()["build"]["state"] in ("running", "succeeded")
    again = await client.post("/api/admin/image/build", headers=admin)
    if started.json()["build"]["state"] == "running" and again.status_code != 202:
        assert again.status_code == 409 and "being built already" in again.json()["detail"]
    image, lines = await _follow_build(client, admin)
    assert image["build"]["state"] == "succeeded", image
    assert image["present"] is True and image["problem"] is None
    assert any("built-step" in line for line in lines), lines
    async with aiodocker.Docker() as docker:
        built = await docker.images.inspect(tag)
    # The workspace target, not the last stage of the file.
    assert built["Config"]["Labels"].get("aicode.test") == "built"


async def test_a_failing_build_says_why_and_members_may_neither_look_nor_build(settings, tmp_path) -> None:
    containerfile = tmp_path / "Containerfile"
    containerfile.write_text("FROM aicode-no-such-base:never AS workspace\n")
    tag = f"aicode-test-built:{uuid.uuid4().hex[:8]}"
    app = create_app(dataclasses.replace(settings, workspace_image=tag, containerfile=containerfile))
    async with AsyncTestClient(app=app) as client:
        admin = await login(client, *ADMIN)
        alice = await make_user(client, admin, "alice")
        assert (await client.get("/api/admin/image", headers=alice)).status_code == 403
        assert (await client.post("/api/admin/image/build", headers=alice)).status_code == 403
        assert (await client.post("/api/admin/image/build", headers=admin)).status_code == 202
        image, _ = await _follow_build(client, admin)
        assert image["build"]["state"] == "failed" and image["present"] is False
        assert "aicode-no-such-base" in image["build"]["error"], image["build"]["error"]
        # The Admin page shows the failure and offers to build again.
        page = await client.get("/admin", headers={**admin, "Accept": "text/html"})
        assert "failed" in page.text and "Build the workspace image" in page.text
    missing = create_app(dataclasses.replace(settings, containerfile=tmp_path / "nope" / "Containerfile"))
    async with AsyncTestClient(app=missing) as client:
        admin = await login(client, *ADMIN)
        refused = await client.post("/api/admin/image/build", headers=admin)
        assert refused.status_code == 409 and "no Containerfile" in refused.json()["detail"]


async def test_the_checklist_leads_a_new_member_through_key_workspace_and_first_task(task_app, source_repo) -> None:
    admin = await login(task_app, *ADMIN)
    bob = await make_user(task_app, admin, "bob")
    html = {**bob, "Accept": "text/html"}
    page = (await task_app.get("/", headers=html)).text
    assert 'data-testid="first-run"' in page
    # The image is there (the fake image); a key, a workspace and a task are not.
    assert re.search(r'class="done" data-step="1"', page) and re.search(r'class="todo" data-step="2"', page)
    assert 'href="/settings#keys-head"' in page and "No workspace to run a task in yet" in page
    await task_app.put("/api/me/credentials/anthropic", json={"api_key": "sk-test-bob"}, headers=bob)
    created = await task_app.post("/api/workspaces", json={"name": "bobs", "repo_url": str(source_repo)}, headers=bob)
    workspace = await wait_for_status(task_app, bob, created.json()["id"])
    page = (await task_app.get("/", headers=html)).text
    assert re.search(r'class="done" data-step="3"', page) and re.search(r'class="todo" data-step="4"', page)
    # The overview's form names the workspace and which keys it has for each agent.
    assert f'value="{workspace["id"]}" data-providers="anthropic"' in page
    submitted = await task_app.post("/tasks", data={"workspace_id": workspace["id"], "prompt": "@say hello",
                                                    "agent": "claude"}, headers=html, follow_redirects=False)
    assert submitted.status_code == 303, submitted.text
    task_id = submitted.headers["location"].rsplit("/", 1)[1]
    assert (await finished(task_app, bob, task_id))["status"] == "succeeded"
    assert 'data-testid="first-run"' not in (await task_app.get("/", headers=html)).text


async def test_the_overview_form_refuses_a_missing_workspace_or_one_the_user_may_not_run_in(task_app, workspace) -> None:
    ws, alice = workspace
    admin = await login(task_app, *ADMIN)
    carol = await make_user(task_app, admin, "carol")
    html = {**carol, "Accept": "text/html"}
    no_workspace = await task_app.post("/tasks", data={"prompt": "@say hi there"},
                                       headers={**alice, "Accept": "text/html"}, follow_redirects=False)
    assert no_workspace.status_code == 400 and "choose the workspace" in no_workspace.text
    assert "@say hi there</textarea>" in no_workspace.text  # what was typed is kept
    not_hers = await task_app.post("/tasks", data={"workspace_id": ws["id"], "prompt": "@say hi"}, headers=html,
                                   follow_redirects=False)
    assert not_hers.status_code == 404, not_hers.status_code
    listed = (await task_app.get("/api/tasks", headers=alice)).json()
    assert "@say hi" not in str(listed)


async def test_an_owner_edits_and_deletes_a_workspace_in_the_browser_forms_an_editor_may_not(task_app,
                                                                                             workspace) -> None:
    ws, alice = workspace
    admin = await login(task_app, *ADMIN)
    bob = await make_user(task_app, admin, "bob")
    await task_app.put(f"/api/workspaces/{ws['id']}/members/bob", json={"role": "editor"}, headers=alice)
    task = await finished(task_app, alice, (await task_app.post(f"/api/workspaces/{ws['id']}/tasks",
                                                                json={"prompt": "@say hi"}, headers=alice)).json()["id"])
    html = {**alice, "Accept": "text/html"}
    page = (await task_app.get(f"/workspaces/{ws['id']}", headers=html)).text
    assert "removes, for everyone and for good" in page and "its 1 task with" in page
    assert 'data-testid="workspace-settings"' not in (await task_app.get(f"/workspaces/{ws['id']}",
                                                                          headers={**bob, "Accept": "text/html"})).text
    saved = await task_app.post(f"/workspaces/{ws['id']}/settings", headers=html, follow_redirects=False,
                                data={"name": "renamed", "network": "none", "egress_allow": "example.org",
                                      "memory_mb": "512"})
    assert saved.status_code == 303 and "saved=settings" in saved.headers["location"], saved.text
    body = (await task_app.get(f"/api/workspaces/{ws['id']}", headers=alice)).json()
    assert (body["name"], body["network"], body["egress_allow"], body["limits"]["memory_mb"]) == (
        "renamed", "none", ["example.org"], 512)
    refused = await task_app.post(f"/workspaces/{ws['id']}/settings", headers=html, data={"memory_mb": "1"},
                                  follow_redirects=False)
    assert refused.status_code == 400 and "memory" in refused.text
    by_editor = await task_app.post(f"/workspaces/{ws['id']}/delete", data={"confirm_name": "renamed"},
                                    headers={**bob, "Accept": "text/html"}, follow_redirects=False)
    assert by_editor.status_code == 403
    wrong_name = await task_app.post(f"/workspaces/{ws['id']}/delete", data={"confirm_name": "proj"}, headers=html,
                                     follow_redirects=False)
    assert wrong_name.status_code == 400 and "type the workspace&#39;s name" in wrong_name.text
    deleted = await task_app.post(f"/workspaces/{ws['id']}/delete", data={"confirm_name": "renamed"}, headers=html,
                                  follow_redirects=False)
    assert deleted.status_code == 303 and deleted.headers["location"] == "/workspaces?deleted=renamed"
    listing = await task_app.get(deleted.headers["location"], headers=html)
    assert "The workspace renamed was deleted." in listing.text
    assert (await task_app.get(f"/api/tasks/{task['id']}", headers=alice)).status_code == 404


def test_aicode_image_build_prints_the_progress_and_status_says_present(settings: Settings, fake_image: str,
                                                                        tmp_path: Path) -> None:
    from tests.cli_support import aicode, serve_in_thread, token_for

    tag = f"aicode-test-built:{uuid.uuid4().hex[:8]}"
    containerfile = tmp_path / "Containerfile"
    containerfile.write_text(f"FROM {fake_image} AS workspace\nRUN echo from-the-cli-build\n")
    try:
        with serve_in_thread(dataclasses.replace(settings, workspace_image=tag, containerfile=containerfile)) as server:
            env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "AICODE_SERVER": server.url,
                   "AICODE_TOKEN": token_for(server, *ADMIN)}
            before = aicode(env, "image", "status")
            assert before.returncode == 1 and "not on this server's Docker engine" in before.stdout, before
            built = aicode(env, "image", "build", timeout=120)
            assert built.returncode == 0, (built.stdout, built.stderr)
            assert "from-the-cli-build" in built.stdout and f"{tag} is built" in built.stdout + built.stderr
            after = aicode(env, "image", "status")
            assert after.returncode == 0 and f"{tag}: present" in after.stdout
    finally:
        asyncio.run(_remove_image(tag))
