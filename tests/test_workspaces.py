"""The workspace API: registering repositories, their mirrors, validation and who may see what."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from aicode.app import create_app
from aicode.settings import Settings
from tests.conftest import git, wait_for_status

TOKEN = "s3cr3t-token"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """https remotes here point at 127.0.0.1, a local address aicode refuses unless an admin allows it."""
    return dataclasses.replace(settings, allowed_git_hosts=("127.0.0.1",))


@pytest.fixture(autouse=True)
async def _no_clone_left_running(client: AsyncTestClient, admin_headers: dict[str, str]) -> AsyncIterator[None]:
    """Clones still running when a test ends are waited for, so none is cut off by the app's shutdown."""
    yield
    async with asyncio.timeout(20):
        while any(w["status"] == "cloning" for w in (await client.get("/api/workspaces", headers=admin_headers)).json()):
            await asyncio.sleep(0.05)


def mirror_of(settings: Settings, workspace_id: str) -> Path:
    return settings.data_dir / "git" / "mirrors" / f"{workspace_id}.git"


def mirror_branches(mirror: Path) -> set[str]:
    out = git(mirror, "--git-dir", str(mirror), "for-each-ref", "--format=%(refname:short)", "refs/heads")
    return set(out.split())


def assert_error_shape(response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body["status_code"], int) and body["status_code"] == status
    assert isinstance(body["detail"], str) and body["detail"]
    assert "Traceback" not in response.text
    return body


async def create(client: AsyncTestClient, headers: dict[str, str], **fields) -> dict:
    response = await client.post("/api/workspaces", json=fields, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def create_ready(client: AsyncTestClient, headers: dict[str, str], source: Path, name: str = "proj") -> dict:
    created = await create(client, headers, name=name, repo_url=str(source))
    body = await wait_for_status(client, headers, created["id"])
    assert body["status"] == "ready", body
    return body


# -- creating from a local repository ------------------------------------------------------------


async def test_create_answers_cloning_then_becomes_ready(client, alice, source_repo) -> None:
    created = await create(client, alice, name="proj", repo_url=str(source_repo))
    assert created["status"] == "cloning"
    body = await wait_for_status(client, alice, created["id"])
    assert body["status"] == "ready", body
    assert body["error"] is None


async def test_create_detects_the_default_branch_and_records_the_sync(client, alice, source_repo) -> None:
    body = await create_ready(client, alice, source_repo)
    assert body["default_branch"] == "trunk"
    assert body["last_synced_at"] is not None


async def test_mirror_is_a_bare_repository_with_every_branch(client, settings, alice, source_repo) -> None:
    body = await create_ready(client, alice, source_repo)
    mirror = mirror_of(settings, body["id"])
    assert git(mirror, "--git-dir", str(mirror), "rev-parse", "--is-bare-repository") == "true"
    assert mirror_branches(mirror) == {"trunk", "feature"}
    assert git(mirror, "--git-dir", str(mirror), "rev-parse", "trunk") == git(source_repo, "rev-parse", "trunk")


async def test_explicit_default_branch_is_kept(client, alice, source_repo) -> None:
    created = await create(client, alice, name="proj", repo_url=str(source_repo), default_branch="feature")
    assert created["default_branch"] == "feature"
    body = await wait_for_status(client, alice, created["id"])
    assert body["status"] == "ready"
    assert body["default_branch"] == "feature"


# -- repo_url values that are refused ------------------------------------------------------------


def _git_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "trunk")
    git(path, "commit", "-q", "--allow-empty", "-m", "outside")
    return path


def _outside(tmp_path: Path, root: Path) -> str:
    return str(_git_repo(tmp_path / "elsewhere"))


def _symlink_out(tmp_path: Path, root: Path) -> str:
    link = root / "link"
    link.symlink_to(_git_repo(tmp_path / "elsewhere"), target_is_directory=True)
    return str(link)


def _not_a_repo(tmp_path: Path, root: Path) -> str:
    (root / "plain").mkdir()
    return str(root / "plain")


BAD_REPO_URLS: list[tuple[str, Callable[[Path, Path], str], str]] = [
    ("file-url", lambda tmp, root: f"file://{root}/project", "file://"),
    ("ext-helper-with-spaces", lambda tmp, root: "ext::sh -c touch% /tmp/pwned", "spaces"),
    ("ext-helper", lambda tmp, root: "ext::sh", "ext::"),
    ("plain-http", lambda tmp, root: "http://example.com/x.git", "http"),
    ("ssh-url", lambda tmp, root: "ssh://git@example.com/x.git", "ssh"),
    ("scp-like", lambda tmp, root: "git@github.com:a/b.git", "ssh"),
    ("relative-path", lambda tmp, root: "project", "absolute path"),
    ("outside-roots", _outside, "outside"),
    ("symlink-out-of-root", _symlink_out, "outside"),
    ("not-a-git-repo", _not_a_repo, "not a git repository"),
    ("missing-path", lambda tmp, root: str(root / "missing"), "does not exist"),
    ("ftp-url", lambda tmp, root: "ftp://x/y", "ftp://"),
    ("empty", lambda tmp, root: "", "repo_url"),
]


@pytest.mark.parametrize(("make_url", "expected"), [(m, e) for _, m, e in BAD_REPO_URLS],
                         ids=[i for i, _, _ in BAD_REPO_URLS])
async def test_bad_repo_url_is_refused_and_nothing_is_created(
    client, alice, tmp_path, repos_root, source_repo, make_url, expected
) -> None:
    response = await client.post(
        "/api/workspaces", json={"name": "proj", "repo_url": make_url(tmp_path, repos_root)}, headers=alice
    )
    assert_error_shape(response, 400)
    assert expected in response.text  # the detail, or for schema errors the field named in `extra`
    listed = await client.get("/api/workspaces", headers=alice)
    assert listed.json() == []


# -- request validation --------------------------------------------------------------------------


INVALID_BODIES = [
    ("missing-name", {"repo_url": "/x"}, "name"),
    ("name-wrong-type", {"name": 3, "repo_url": "/x"}, "name"),
    ("unknown-field", {"name": "proj", "repo_url": "/x", "colour": "red"}, "colour"),
    ("name-pattern", {"name": "has space", "repo_url": "/x"}, "name"),
    ("memory-too-small", {"name": "proj", "repo_url": "/x", "limits": {"memory_mb": 1}}, "memory_mb"),
]


@pytest.mark.parametrize(("payload", "named"), [(p, n) for _, p, n in INVALID_BODIES],
                         ids=[i for i, _, _ in INVALID_BODIES])
async def test_invalid_body_is_a_400_naming_the_field(client, alice, payload, named) -> None:
    response = await client.post("/api/workspaces", json=payload, headers=alice)
    body = assert_error_shape(response, 400)
    assert named in response.text, body


async def test_malformed_json_is_a_400(client, alice) -> None:
    response = await client.post(
        "/api/workspaces", content=b'{"name": "proj", ', headers={**alice, "Content-Type": "application/json"}
    )
    assert_error_shape(response, 400)


async def test_body_over_one_mebibyte_is_a_413(client, alice) -> None:
    payload = b'{"name": "proj", "repo_url": "' + b"a" * (1024 * 1024 + 10) + b'"}'
    response = await client.post(
        "/api/workspaces", content=payload, headers={**alice, "Content-Type": "application/json"}
    )
    assert_error_shape(response, 413)


# -- names ---------------------------------------------------------------------------------------


async def test_duplicate_name_ignoring_case_is_a_409(client, alice, source_repo) -> None:
    await create(client, alice, name="Proj", repo_url=str(source_repo))
    response = await client.post("/api/workspaces", json={"name": "proj", "repo_url": str(source_repo)}, headers=alice)
    body = assert_error_shape(response, 409)
    assert "proj" in body["detail"]
    assert len((await client.get("/api/workspaces", headers=alice)).json()) == 1


async def test_same_name_for_another_user_is_allowed(client, alice, bob, source_repo) -> None:
    await create(client, alice, name="proj", repo_url=str(source_repo))
    await create(client, bob, name="proj", repo_url=str(source_repo))


# -- https with a token --------------------------------------------------------------------------


TOKEN_URL = f"https://user:{TOKEN}@127.0.0.1:1/x.git"


async def test_token_in_url_is_split_off_and_never_returned(client, alice) -> None:
    created = await create(client, alice, name="remote", repo_url=TOKEN_URL)
    assert created["repo_url"] == "https://127.0.0.1:1/x.git"
    assert created["has_repo_token"] is True
    assert TOKEN not in str(created)
    await wait_for_status(client, alice, created["id"])
    for response in (
        await client.get(f"/api/workspaces/{created['id']}", headers=alice),
        await client.get("/api/workspaces", headers=alice),
    ):
        assert response.status_code == 200
        assert TOKEN not in response.text
        assert "user:" not in response.text


async def test_token_is_stored_encrypted(client, alice, database_url) -> None:
    created = await create(client, alice, name="remote", repo_url=TOKEN_URL)
    await wait_for_status(client, alice, created["id"])
    conn = await asyncpg.connect(database_url)
    try:
        stored = await conn.fetchval("SELECT repo_token_enc FROM workspaces WHERE id = $1", created["id"])
    finally:
        await conn.close()
    assert stored
    assert TOKEN.encode() not in bytes(stored)


async def test_unreachable_remote_ends_in_error_naming_the_url_not_the_token(client, alice) -> None:
    created = await create(client, alice, name="remote", repo_url=TOKEN_URL)
    body = await wait_for_status(client, alice, created["id"])
    assert body["status"] == "error"
    assert "https://127.0.0.1:1/x.git" in body["error"]
    assert "could not be reached" in body["error"]
    assert TOKEN not in body["error"]
    assert body["last_synced_at"] is None


# -- who sees what -------------------------------------------------------------------------------


async def test_another_user_cannot_reach_the_workspace(client, alice, bob, source_repo) -> None:
    ws = await create_ready(client, alice, source_repo)
    url = f"/api/workspaces/{ws['id']}"
    assert (await client.get(url, headers=bob)).status_code == 404
    assert (await client.patch(url, json={"name": "mine"}, headers=bob)).status_code == 404
    assert (await client.delete(url, headers=bob)).status_code == 404
    assert (await client.post(f"{url}/sync", headers=bob)).status_code == 404
    assert (await client.get("/api/workspaces", headers=bob)).json() == []
    # ...and the workspace is untouched.
    assert (await client.get(url, headers=alice)).json()["name"] == "proj"


async def test_admin_sees_everyones_workspaces(client, admin_headers, alice, source_repo) -> None:
    ws = await create_ready(client, alice, source_repo)
    listed = await client.get("/api/workspaces", headers=admin_headers)
    assert [w["id"] for w in listed.json()] == [ws["id"]]
    response = await client.get(f"/api/workspaces/{ws['id']}", headers=admin_headers)
    assert response.status_code == 200
    assert response.json()["owner_id"] == ws["owner_id"]


async def test_unknown_workspace_id_is_a_404(client, alice) -> None:
    response = await client.get("/api/workspaces/00000000-0000-4000-8000-000000000000", headers=alice)
    assert_error_shape(response, 404)


async def test_non_uuid_workspace_id_is_a_client_error(client, alice) -> None:
    response = await client.get("/api/workspaces/not-a-uuid", headers=alice)
    assert 400 <= response.status_code < 500


async def test_requests_without_credentials_are_401(client) -> None:
    assert_error_shape(await client.get("/api/workspaces"), 401)
    assert_error_shape(await client.post("/api/workspaces", json={"name": "p", "repo_url": "/x"}), 401)


# -- network policy ------------------------------------------------------------------------------


async def test_the_default_network_is_the_gateway_policy(client, alice, source_repo) -> None:
    created = await create(client, alice, name="proj", repo_url=str(source_repo))
    assert created["network"] is None and created["egress_allow"] == []


@pytest.mark.parametrize("network", ["gateway", "allowlist", "none"])
async def test_a_member_may_choose_a_network_policy(client, alice, source_repo, network: str) -> None:
    created = await create(client, alice, name="proj", repo_url=str(source_repo), network=network)
    assert created["network"] == network


@pytest.mark.parametrize("network", ["host", "bridge", "my-net"])
async def test_an_unknown_network_is_refused_naming_the_choices(client, alice, source_repo, network: str) -> None:
    response = await client.post(
        "/api/workspaces", json={"name": "proj", "repo_url": str(source_repo), "network": network}, headers=alice)
    assert response.status_code == 400
    assert network in response.json()["detail"] and "gateway" in response.json()["detail"]


async def test_the_egress_allowlist_is_stored_and_validated(client, alice, source_repo) -> None:
    created = await create(client, alice, name="proj", repo_url=str(source_repo), network="allowlist",
                           egress_allow=["registry.npmjs.org", "*.pypi.org", "git.example.com:8443"])
    assert created["egress_allow"] == ["registry.npmjs.org", "*.pypi.org", "git.example.com:8443"]
    for bad in (["http://x.org"], ["a b"], ["x.org/path"], ["*"]):
        response = await client.patch(f"/api/workspaces/{created['id']}", json={"egress_allow": bad}, headers=alice)
        assert response.status_code == 400, bad


async def test_only_an_admin_sets_a_workspace_budget(client, alice, admin_headers, source_repo) -> None:
    created = await create(client, alice, name="proj", repo_url=str(source_repo))
    refused = await client.patch(f"/api/workspaces/{created['id']}", json={"monthly_budget_usd": 5}, headers=alice)
    assert refused.status_code == 403
    set_ = await client.patch(f"/api/workspaces/{created['id']}", json={"monthly_budget_usd": 5}, headers=admin_headers)
    assert set_.status_code == 200 and set_.json()["monthly_budget_usd"] == 5
    cleared = await client.patch(f"/api/workspaces/{created['id']}", json={"monthly_budget_usd": None},
                                 headers=admin_headers)
    assert cleared.json()["monthly_budget_usd"] is None


# -- changing ------------------------------------------------------------------------------------


async def test_patch_changes_name_image_and_limits(client, alice, source_repo) -> None:
    ws = await create_ready(client, alice, source_repo)
    response = await client.patch(
        f"/api/workspaces/{ws['id']}",
        json={"name": "renamed", "image": "example/image:1", "limits": {"memory_mb": 512, "pids": 100}},
        headers=alice,
    )
    assert response.status_code == 200, response.text
    again = (await client.get(f"/api/workspaces/{ws['id']}", headers=alice)).json()
    assert (again["name"], again["image"], again["limits"]) == ("renamed", "example/image:1", {"memory_mb": 512, "pids": 100})


async def test_patch_to_a_taken_name_is_a_409(client, alice, source_repo) -> None:
    await create(client, alice, name="first", repo_url=str(source_repo))
    second = await create(client, alice, name="second", repo_url=str(source_repo))
    response = await client.patch(f"/api/workspaces/{second['id']}", json={"name": "FIRST"}, headers=alice)
    assert_error_shape(response, 409)


async def test_sync_fetches_new_commits(client, settings, alice, source_repo) -> None:
    ws = await create_ready(client, alice, source_repo)
    (source_repo / "new.txt").write_text("new\n")
    git(source_repo, "add", "new.txt")
    git(source_repo, "commit", "-q", "-m", "second commit")
    head = git(source_repo, "rev-parse", "trunk")
    response = await client.post(f"/api/workspaces/{ws['id']}/sync", headers=alice)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ready"
    mirror = mirror_of(settings, ws["id"])
    assert git(mirror, "--git-dir", str(mirror), "rev-parse", "trunk") == head


async def test_delete_removes_the_workspace_and_its_mirror(client, settings, alice, source_repo) -> None:
    ws = await create_ready(client, alice, source_repo)
    mirror = mirror_of(settings, ws["id"])
    assert mirror.is_dir()
    response = await client.delete(f"/api/workspaces/{ws['id']}", headers=alice)
    assert response.status_code == 204
    assert not mirror.exists()
    assert (await client.get(f"/api/workspaces/{ws['id']}", headers=alice)).status_code == 404


# -- crash recovery ------------------------------------------------------------------------------


async def test_clone_cut_short_is_resumed_at_start_up(
    client, settings, alice, source_repo, database_url
) -> None:
    ws = await create_ready(client, alice, source_repo)
    mirror = mirror_of(settings, ws["id"])
    shutil.rmtree(mirror)  # as if the server died mid-clone
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "UPDATE workspaces SET status = 'cloning', last_synced_at = NULL WHERE id = $1", ws["id"]
        )
    finally:
        await conn.close()

    async with AsyncTestClient(app=create_app(settings)) as restarted:
        body = await wait_for_status(restarted, alice, ws["id"])
    assert body["status"] == "ready", body
    assert body["last_synced_at"] is not None
    assert mirror_branches(mirror) == {"trunk", "feature"}
