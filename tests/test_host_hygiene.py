"""On the host: who owns the data dir's folders, their modes, and as whom the server's git work runs."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from aicode.git.worker import GitWorker
from aicode.storage.identity import remap_offsets, server_identities
from aicode.storage.layout import DataLayout
from tests.tasks_support import checkout_path, finished, mirror_path, submit

pytestmark = pytest.mark.timeout(120)
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="identities are chosen only when the server is root")


def _modes(top: Path) -> dict[Path, int]:
    found = {top: stat.S_IMODE(top.lstat().st_mode)}
    for folder, dirs, files in os.walk(top):
        for name in dirs + files:
            path = Path(folder) / name
            found[path] = stat.S_IMODE(path.lstat().st_mode)
    return found


async def test_the_data_dir_and_its_folders_are_private_to_their_owners(task_app, workspace, task_settings) -> None:
    ws, alice = workspace
    task = await finished(task_app, alice, (await submit(task_app, alice, ws["id"], "@write a.txt a"))["id"])
    data = task_settings.data_dir
    private = [data, data / "git", data / "git" / "mirrors", data / "tasks", data / "tasks" / task["id"],
               checkout_path(data, task["id"]), checkout_path(data, task["id"]).parent / "agent"]
    assert {path: oct(_modes(path)[path]) for path in private} == {path: "0o700" for path in private}
    # Nothing the server writes itself is readable by other users.
    assert not [p for p, mode in _modes(data).items() if mode & 0o077 and p.is_relative_to(data / "tasks" / task["id"])
                and not p.is_relative_to(checkout_path(data, task["id"]).parent / "agent")
                and not p.is_relative_to(checkout_path(data, task["id"]))]


@root_only
async def test_the_git_store_belongs_to_the_git_uid_and_the_working_copy_to_the_agent(
    task_app, workspace, task_settings
) -> None:
    ws, alice = workspace
    task = await finished(task_app, alice, (await submit(task_app, alice, ws["id"], "@write a.txt a"))["id"])
    data = task_settings.data_dir
    assert data.stat().st_uid == 0
    assert {p.stat().st_uid for p in [data / "git", mirror_path(data, ws["id"]), *mirror_path(data, ws["id"]).rglob("*")]} \
        == {10001}
    checkout = checkout_path(data, task["id"])
    assert {p.lstat().st_uid for p in [checkout, *checkout.rglob("*")]} == {10000}
    assert (data / "tasks").stat().st_uid == 0 and checkout.parent.stat().st_uid == 0


@root_only
async def test_the_git_worker_is_not_root_and_sees_only_the_git_store(tmp_path: Path) -> None:
    layout = DataLayout(tmp_path / "data", server_identities(None, None, None, None))
    layout.prepare()
    worker = GitWorker(layout.git_root, layout.ids)
    try:
        euid, egid, root = await worker.identity()
    finally:
        await worker.close()
    assert (euid, egid) == (10001, 10001)
    assert Path(root) != layout.git_root  # mounted where every uid can reach it, in its own namespace


def test_chosen_identities_must_not_be_root_nor_shared() -> None:
    if os.geteuid() != 0:
        with pytest.raises(ValueError, match="only be chosen when aicode runs as root"):
            server_identities(12345, None, None, None)
        return
    with pytest.raises(ValueError, match="must not be 0"):
        server_identities(0, None, None, None)
    with pytest.raises(ValueError, match="must differ"):
        server_identities(20000, None, 20000, None)


def test_user_namespace_remapping_is_read_from_the_engines_config(tmp_path: Path) -> None:
    config = tmp_path / "daemon.json"
    config.write_text(json.dumps({"userns-remap": "default"}))
    (tmp_path / "subuid").write_text("someone:50000:65536\ndockremap:165536:65536\n")
    (tmp_path / "subgid").write_text("dockremap:231072:65536\n")
    assert remap_offsets(config, tmp_path) == (165536, 231072)
    config.write_text(json.dumps({"storage-driver": "overlay2"}))
    assert remap_offsets(config, tmp_path) == (0, 0)
    assert remap_offsets(tmp_path / "missing.json", tmp_path) == (0, 0)
