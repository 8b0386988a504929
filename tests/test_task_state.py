"""A task's state stored centrally (commits and the agent's session) is hostile input too.

The agent owns its config dir: what it leaves there (symlinks to the server's secrets, FIFOs,
floods of files) is packed as data, never followed; a stored archive or object pack is unpacked
only as plain files at checked paths, and objects only when they hash to their ids.
"""

from __future__ import annotations

import io
import os
import tarfile
import uuid
import zlib
from pathlib import Path

import asyncpg
import pygit2
import pytest

from aicode.git.transfer import TransferError, export_objects, import_objects
from aicode.storage.identity import server_identities
from aicode.tasks.session_state import SessionStateError, pack_session, unpack_session
from tests.conftest import git
from tests.tasks_support import finished, submit

IDS = server_identities(None, None, None, None)


async def _stored_session(database_url: str, task_id: str) -> bytes:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval("SELECT archive FROM task_sessions WHERE task_id = $1", uuid.UUID(task_id))
    finally:
        await conn.close()


async def test_symlinks_and_fifos_in_the_agents_state_are_stored_as_nothing(
    task_app, workspace, task_settings, database_url: str
) -> None:
    ws, alice = workspace
    canary = task_settings.data_dir / "canary.txt"
    secret = uuid.uuid4().hex
    canary.write_text(secret)
    canary.chmod(0o600)
    task = await submit(task_app, alice, ws["id"], "\n".join([
        f'@bash ln -s {canary} "$CLAUDE_CONFIG_DIR/leak"',
        f'@bash ln -s {task_settings.data_dir} "$CLAUDE_CONFIG_DIR/datadir"',
        '@bash mkfifo "$CLAUDE_CONFIG_DIR/pipe"',
        '@bash mkdir -p "$CLAUDE_CONFIG_DIR/notes" && echo kept > "$CLAUDE_CONFIG_DIR/notes/plain.txt"',
        "@write work.txt done",
    ]))
    ended = await finished(task_app, alice, task["id"], timeout=90)
    assert ended["status"] == "succeeded", ended
    archive = await _stored_session(database_url, task["id"])
    assert archive is not None
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert all(m.isfile() or m.isdir() for m in members.values())
        assert "leak" not in members and "datadir" not in members and "pipe" not in members
        assert tar.extractfile(members["notes/plain.txt"]).read() == b"kept\n"  # type: ignore[union-attr]
        contents = b"".join(tar.extractfile(m).read() for m in members.values() if m.isfile())  # type: ignore[union-attr]
    assert secret.encode() not in contents


def _archive(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, data in members:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)
    return buffer.getvalue()


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


def test_a_stored_session_unpacks_only_plain_files_inside_its_folder(tmp_path: Path) -> None:
    folder = tmp_path / "agent"
    folder.mkdir()
    (folder / "stale.txt").write_text("from an older turn")
    outside = tmp_path / "outside.txt"
    archive = _archive(
        (_member("../outside.txt"), b"escaped"),
        (_member("/tmp/absolute.txt"), b"escaped"),
        (_member("link", tarfile.SYMTYPE, str(outside)), b""),
        (_member("hard", tarfile.LNKTYPE, "../outside.txt"), b""),
        (_member("dev", tarfile.CHRTYPE), b""),
        (_member("projects/-workspace/session.jsonl"), b'{"ok": true}\n'),
    )
    unpack_session(archive, folder, IDS, 1024 * 1024)
    assert not outside.exists() and not Path("/tmp/absolute.txt").exists()
    found = sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))
    assert found == ["projects", "projects/-workspace", "projects/-workspace/session.jsonl"]


def test_a_stored_session_beyond_the_cap_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "agent"
    folder.mkdir()
    (folder / "big.bin").write_bytes(os.urandom(4096))
    with pytest.raises(SessionStateError):
        pack_session(folder, IDS, 1024)
    archive = _archive((_member("big.bin"), b"x" * 4096))
    with pytest.raises(SessionStateError):
        unpack_session(archive, folder, IDS, 1024)


def _repo_with_turn(path: Path) -> tuple[str, str]:
    path.mkdir()
    git(path, "init", "-q", "-b", "trunk")
    (path / "a.txt").write_text("base\n")
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "base")
    base = git(path, "rev-parse", "HEAD").strip()
    (path / "b.txt").write_text("turn\n")
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "turn")
    return base, git(path, "rev-parse", "HEAD").strip()


def test_a_turns_objects_move_to_another_mirror_and_tampering_is_caught(tmp_path: Path) -> None:
    base, head = _repo_with_turn(tmp_path / "made")
    packed = export_objects(tmp_path / "made" / ".git", base, head, 1024 * 1024)
    other = tmp_path / "other.git"
    pygit2.clone_repository(str(tmp_path / "made"), str(other), bare=True, checkout_branch="trunk")
    repo = pygit2.Repository(str(other))
    repo.references.create("refs/heads/trunk", pygit2.Oid(hex=base), force=True)
    for name in list(repo.references):
        if name.startswith("refs/remotes/"):
            repo.references.delete(name)
    ref = "refs/aicode/tasks/t"
    import_objects(other, [packed], ref, head)
    assert str(pygit2.Repository(str(other)).references[ref].target) == head
    # A record whose content does not hash to its id is refused rather than written as that id.
    header = len(b"aicode-objects-1\n")
    raw_id, kind = packed[header:header + 20], packed[header + 20]
    forged_body = zlib.compress(b"tree 0\x00")
    forged = b"aicode-objects-1\n" + raw_id + bytes([kind]) + len(forged_body).to_bytes(8, "big") + forged_body
    with pytest.raises(TransferError):
        import_objects(other, [forged], ref, head)
    with pytest.raises(TransferError):
        import_objects(other, [b"not a pack"], ref, head)
    with pytest.raises(TransferError):
        export_objects(tmp_path / "made" / ".git", base, head, 10)
