"""Attacks the agent runs inside its container on the server's git handling: none gets anything of the
host or of another workspace into the task's commits, and none makes the server run anything."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pygit2
import pytest

from aicode.settings import Settings
from tests.conftest import ADMIN, git, login, make_user, wait_for_status
from tests.tasks_support import (
    checkout_path,
    events,
    finished,
    mirror_path,
    of_type,
    submit,
    submit_follow_up,
    task_ref,
)

pytestmark = pytest.mark.timeout(180)

FILE, LINK = 0o100644, 0o120000
# The source repo's files (tests/conftest.py `source_repo`): every task starts from them.
BASE = {"README.md": (FILE, b"# project\n"), "app.py": (FILE, b"print('hello')\n")}


@dataclass(frozen=True, slots=True)
class Loot:
    """What the agent must never get into its commits, and where it lies on the host."""

    host: str  # in <data_dir>/canary.txt, 0600 (after a `*` line: a .gitignore that read it ignores all)
    bob: str  # in secret.txt of bob's workspace, so in bob's mirror
    data_dir: Path
    bob_mirror: Path
    bob_commit: str
    bob_blob: str


@pytest.fixture
async def loot(task_app, task_settings: Settings, repos_root: Path, workspace) -> Loot:
    host, secret = uuid.uuid4().hex, uuid.uuid4().hex
    canary = task_settings.data_dir / "canary.txt"
    canary.write_text(f"*\n{host}\n")
    canary.chmod(0o600)
    source = repos_root / "bobs"
    source.mkdir()
    git(source, "init", "-q", "-b", "trunk")
    (source / "secret.txt").write_text(f"{secret}\n")
    git(source, "add", ".")
    git(source, "commit", "-q", "-m", "bob's secret")
    bob = await make_user(task_app, await login(task_app, *ADMIN), "bob")
    created = await task_app.post("/api/workspaces", json={"name": "bobs", "repo_url": str(source)}, headers=bob)
    assert created.status_code == 201, created.text
    assert (await wait_for_status(task_app, bob, created.json()["id"]))["status"] == "ready"
    mirror = mirror_path(task_settings.data_dir, created.json()["id"])
    commit = pygit2.Repository(str(mirror)).branches.local["trunk"].peel(pygit2.Commit)
    return Loot(host=host, bob=secret, data_dir=task_settings.data_dir, bob_mirror=mirror,
                bob_commit=str(commit.id), bob_blob=str(pygit2.hash(f"{secret}\n".encode())))


@pytest.fixture
def host_ignore_all() -> Iterator[Path]:
    """A host file anyone may read that, read as a .gitignore, would ignore every file."""
    path = Path("/tmp") / f"aicode-ignore-all-{uuid.uuid4().hex}"
    path.write_text("*\n")
    path.chmod(0o644)
    yield path
    path.unlink()


async def attack(client, headers: dict[str, str], workspace_id: str, *lines: str, timeout: float = 90) -> dict:
    """Run the fake agent on `lines` (one directive each) as a new task; the task once its turn ended."""
    task = await submit(client, headers, workspace_id, "\n".join(lines))
    return await finished(client, headers, task["id"], timeout=timeout)


def committed(settings: Settings, workspace_id: str, task: dict) -> dict[str, tuple[int, bytes]]:
    """path -> (mode, content) of every file in the commit the task's branch points at (its head_commit)."""
    repo = pygit2.Repository(str(mirror_path(settings.data_dir, workspace_id)))
    head = repo.references[task_ref(task["id"])].peel(pygit2.Commit)
    assert str(head.id) == task["head_commit"], "the task's branch is not at its head_commit: was a commit made?"
    files: dict[str, tuple[int, bytes]] = {}

    def walk(tree: pygit2.Tree, prefix: str) -> None:
        for item in tree:
            if item.type_str == "tree":
                walk(repo[item.id], f"{prefix}{item.name}/")
            else:
                files[prefix + (item.name or "")] = (int(item.filemode), repo[item.id].data)

    walk(head.tree, "")
    return files


def left_in_checkout(settings: Settings, task: dict, path: str) -> str:
    """A file the agent left in its working copy (read on the host): proof the attack was in place."""
    return (checkout_path(settings.data_dir, task["id"]) / path).read_text()


async def review(client, headers: dict[str, str], task_id: str) -> dict[str, str]:
    """Everything a reviewer can get of the task: diff, files, patch and events, as text."""
    out = {}
    for name in ("diff", "files", "patch", "events"):
        response = await client.get(f"/api/tasks/{task_id}/{name}", headers=headers)
        assert response.status_code == 200, (name, response.text)
        out[name] = response.text
    return out


async def assert_nothing_leaked(client, headers: dict[str, str], task: dict, loot: Loot) -> None:
    for name, text in (await review(client, headers, task["id"])).items():
        assert loot.host not in text, f"the data dir's canary is in the task's {name}"
        assert loot.bob not in text, f"bob's canary is in the task's {name}"


async def not_committed_notice(client, headers: dict[str, str], task_id: str) -> str:
    notices = [e["data"] for e in of_type(await events(client, headers, task_id), "notice")]
    return " ".join(n["message"] for n in notices if n["code"] == "files_not_committed")


async def tool_outputs(client, headers: dict[str, str], task_id: str) -> list[dict]:
    return [e["data"] for e in of_type(await events(client, headers, task_id), "tool.result")]


async def test_core_worktree_and_exclude_tweaks_bring_nothing_of_the_data_dir_into_the_commit(
    task_app, workspace, task_settings, loot
) -> None:
    ws, alice = workspace
    d = loot.data_dir
    task = await attack(
        task_app, alice, ws["id"],
        f"@bash git config core.worktree {d} && git config core.excludesFile {d}/canary.txt",
        "@bash printf '*\\n' >> .git/info/exclude",
        "@write .gitignore !canary.txt\\n!/canary.txt\\n",
        "@write legit.txt legit",
    )
    assert task["status"] == "succeeded", task
    assert f"worktree = {d}" in left_in_checkout(task_settings, task, ".git/config")
    # info/exclude ignores every file, but only the worktree's .gitignore files count: legit.txt is in.
    assert committed(task_settings, ws["id"], task) == {
        **BASE, ".gitignore": (FILE, b"!canary.txt\n!/canary.txt\n"), "legit.txt": (FILE, b"legit")}
    await assert_nothing_leaked(task_app, alice, task, loot)


async def test_a_gitfile_in_place_of_dot_git_leaves_the_commit_of_the_working_copy_files(
    task_app, workspace, task_settings, loot
) -> None:
    ws, alice = workspace
    task = await attack(
        task_app, alice, ws["id"],
        f"@bash rm -rf .git && printf 'gitdir: {loot.bob_mirror}\\n' > .git",
        "@write legit.txt legit",
    )
    assert task["status"] == "succeeded", task
    assert left_in_checkout(task_settings, task, ".git") == f"gitdir: {loot.bob_mirror}\n"
    assert committed(task_settings, ws["id"], task) == {**BASE, "legit.txt": (FILE, b"legit")}
    await assert_nothing_leaked(task_app, alice, task, loot)


async def test_alternates_and_refs_to_bobs_objects_import_nothing_of_bobs_workspace(
    task_app, workspace, task_settings, loot
) -> None:
    ws, alice = workspace
    task = await attack(
        task_app, alice, ws["id"],
        f"@bash echo {loot.bob_mirror}/objects > .git/objects/info/alternates",
        f"@bash echo {loot.bob_commit} > .git/refs/heads/stolen",
        # A tree and commit of the agent's own naming bob's blob (whose id it could compute from a guess).
        f"@bash t=$(printf '100644 blob {loot.bob_blob}\\tsecret.txt\\n' | git mktree --missing) && "
        f"c=$(git commit-tree $t -p HEAD -p {loot.bob_commit} -m take) && git update-ref HEAD $c",
        "@write legit.txt legit",
    )
    assert task["status"] == "succeeded", task
    assert left_in_checkout(task_settings, task, ".git/refs/heads/stolen") == f"{loot.bob_commit}\n"
    assert committed(task_settings, ws["id"], task) == {**BASE, "legit.txt": (FILE, b"legit")}
    mirror = pygit2.Repository(str(mirror_path(task_settings.data_dir, ws["id"])))
    assert loot.bob_blob not in mirror and loot.bob_commit not in mirror
    await assert_nothing_leaked(task_app, alice, task, loot)


async def test_symlinks_to_host_files_are_committed_as_links_never_as_what_they_point_at(
    task_app, workspace, task_settings, loot
) -> None:
    ws, alice = workspace
    links = {"leak": f"{loot.data_dir}/canary.txt", "shadow": "/etc/shadow", "mirror": str(loot.bob_mirror),
             "datadir": str(loot.data_dir), "env": "/proc/self/environ"}
    task = await attack(
        task_app, alice, ws["id"],
        *(f"@bash ln -s {target} {name}" for name, target in links.items()),
        "@bash cat leak mirror/HEAD 2>&1; true",
        "@write legit.txt legit",
    )
    assert task["status"] == "succeeded", task
    assert committed(task_settings, ws["id"], task) == {
        **BASE, "legit.txt": (FILE, b"legit"), **{name: (LINK, t.encode()) for name, t in links.items()}}
    patch = (await task_app.get(f"/api/tasks/{task['id']}/patch", headers=alice)).text
    assert patch.count("new file mode 120000") == len(links)
    assert f"+{loot.data_dir}/canary.txt\n\\ No newline at end of file" in patch
    await assert_nothing_leaked(task_app, alice, task, loot)


async def test_hooks_filters_and_fsmonitor_never_run_on_the_host(task_app, workspace, task_settings, loot) -> None:
    ws, alice = workspace
    d = loot.data_dir
    hook = "printf '#!/bin/sh\\ntouch {d}/pwned-{n}\\n' > .git/hooks/{name} && chmod +x .git/hooks/{name}"
    task = await attack(
        task_app, alice, ws["id"],
        "@bash " + hook.format(d=d, n=1, name="pre-commit"),
        "@bash " + hook.format(d=d, n=2, name="post-commit"),
        "@bash " + hook.format(d=d, n=6, name="post-checkout"),
        f"@bash git config filter.x.clean \"sh -c 'touch {d}/pwned-3; echo FILTERED'\"",
        f"@bash git config filter.x.smudge 'touch {d}/pwned-4' && git config filter.x.required true",
        f"@bash git config core.fsmonitor \"sh -c 'touch {d}/pwned-5' -\" && git config core.hooksPath .git/hooks",
        "@write .gitattributes * filter=x\\n",
        "@write data.txt raw content",
    )
    assert task["status"] == "succeeded", task
    # The clean filter was not applied either: the file is committed as the agent wrote it.
    assert committed(task_settings, ws["id"], task) == {
        **BASE, ".gitattributes": (FILE, b"* filter=x\n"), "data.txt": (FILE, b"raw content")}
    follow = await submit_follow_up(task_app, alice, task["id"], "@write more.txt more")
    assert follow["status"] == "succeeded" and follow["head_commit"] != task["head_commit"]
    assert sorted(d.glob("pwned-*")) == []


async def test_a_fifo_and_a_socket_do_not_stall_the_turn_and_are_named_as_not_committed(
    task_app, workspace, task_settings
) -> None:
    ws, alice = workspace
    task = await attack(
        task_app, alice, ws["id"],
        "@bash mkdir sub && mkfifo pipe sub/pipe",
        "@bash python3 -c \"import socket; socket.socket(socket.AF_UNIX).bind('sock')\" && ls -l",
        "@write sub/kept.txt kept",
        timeout=45,
    )
    assert task["status"] == "succeeded", task
    assert committed(task_settings, ws["id"], task) == {**BASE, "sub/kept.txt": (FILE, b"kept")}
    notice = await not_committed_notice(task_app, alice, task["id"])
    for name in ("pipe", "sock", "sub/pipe"):
        assert f"{name}: not a regular file" in notice


async def test_dot_git_folders_in_any_letter_case_and_at_any_depth_are_never_committed(
    task_app, workspace, task_settings, loot
) -> None:
    ws, alice = workspace
    task = await attack(
        task_app, alice, ws["id"],
        "@bash for d in .GIT .Git sub/.git sub/deeper/.gIt; do mkdir -p $d/hooks && echo [core] > $d/config; done",
        f"@bash printf 'gitdir: {loot.bob_mirror}\\n' > sub/deeper/.GIT",
        "@write sub/legit.txt legit",
    )
    assert task["status"] == "succeeded", task
    assert committed(task_settings, ws["id"], task) == {**BASE, "sub/legit.txt": (FILE, b"legit")}
    await assert_nothing_leaked(task_app, alice, task, loot)


async def test_ntfs_spellings_of_dot_git_are_left_out_with_a_notice_instead_of_failing_the_turn(
    task_app, workspace, task_settings
) -> None:
    ws, alice = workspace
    # NTFS spellings of `.git` (git and libgit2 refuse them in a tree: core.protectNTFS).
    task = await attack(
        task_app, alice, ws["id"],
        "@bash mkdir sub && touch 'git~1' '.git.' 'sub/GIT~1'",
        "@write legit.txt legit",
    )
    assert task["status"] == "succeeded", task
    assert committed(task_settings, ws["id"], task) == {**BASE, "legit.txt": (FILE, b"legit")}
    notice = await not_committed_notice(task_app, alice, task["id"])
    assert all(name in notice for name in ("git~1", ".git.", "sub/GIT~1"))


async def test_a_symlinked_gitignore_is_not_followed(
    task_app, workspace, task_settings, loot, host_ignore_all: Path
) -> None:
    ws, alice = workspace
    task = await attack(
        task_app, alice, ws["id"],
        f"@bash ln -s {host_ignore_all} .gitignore && mkdir sub && ln -s {loot.data_dir}/canary.txt sub/.gitignore",
        "@write legit.txt legit",
        "@write sub/also.txt also",
    )
    assert task["status"] == "succeeded", task
    assert committed(task_settings, ws["id"], task) == {
        **BASE, ".gitignore": (LINK, str(host_ignore_all).encode()), "legit.txt": (FILE, b"legit"),
        "sub/.gitignore": (LINK, f"{loot.data_dir}/canary.txt".encode()), "sub/also.txt": (FILE, b"also")}
    await assert_nothing_leaked(task_app, alice, task, loot)


async def test_unreadable_files_and_non_utf8_names_are_skipped_with_a_notice_and_the_rest_committed(
    task_app, workspace, task_settings
) -> None:
    ws, alice = workspace
    task = await attack(
        task_app, alice, ws["id"],
        "@bash echo hidden > locked.txt && chmod 000 locked.txt",
        "@bash mkdir closed && echo x > closed/f.txt && chmod 000 closed",
        "@bash echo x > \"$(printf 'caf\\351.txt')\" && ls",
        "@write legit.txt legit",
    )
    assert task["status"] == "succeeded", task
    assert committed(task_settings, ws["id"], task) == {**BASE, "legit.txt": (FILE, b"legit")}
    notice = await not_committed_notice(task_app, alice, task["id"])
    assert "locked.txt: not readable" in notice and "closed: folder not readable" in notice
    assert "caf?.txt: name is not valid UTF-8" in notice


async def test_a_tracked_file_made_unreadable_is_left_as_it_was_not_committed_as_deleted(
    task_app, workspace, task_settings
) -> None:
    ws, alice = workspace
    task = await attack(task_app, alice, ws["id"], "@bash chmod 000 app.py", "@write legit.txt legit")
    assert task["status"] == "succeeded", task
    assert "app.py: not readable" in await not_committed_notice(task_app, alice, task["id"])
    # The agent never deleted app.py: leaving it out of the snapshot must not delete it on the branch.
    assert committed(task_settings, ws["id"], task) == {**BASE, "legit.txt": (FILE, b"legit")}


async def test_rewriting_the_agents_own_history_leaves_the_task_branch_linear(
    task_app, workspace, task_settings
) -> None:
    ws, alice = workspace
    first = await attack(task_app, alice, ws["id"], "@write one.txt 1")
    assert first["status"] == "succeeded", first
    second = await submit_follow_up(task_app, alice, first["id"], "\n".join([
        f"@bash git reset -q --hard {first['base_commit']}",
        "@bash git commit -q --amend --allow-empty -m rewritten",
        f"@bash git checkout -q -b other && git update-ref -d refs/heads/aicode/{first['id']}",
        "@write two.txt 2",
    ]))
    assert second["status"] == "succeeded", second
    repo = pygit2.Repository(str(mirror_path(task_settings.data_dir, ws["id"])))
    head = repo[second["head_commit"]]
    assert [str(p) for p in head.parent_ids] == [first["head_commit"]]
    assert [str(p) for p in repo[first["head_commit"]].parent_ids] == [first["base_commit"]]
    # The reset removed one.txt from the working copy: the server commits that, as a new commit.
    assert committed(task_settings, ws["id"], second) == {**BASE, "two.txt": (FILE, b"2")}


async def test_hard_links_work_inside_the_workspace_and_cannot_reach_outside_it(
    task_app, workspace, task_settings, loot
) -> None:
    ws, alice = workspace
    task = await attack(
        task_app, alice, ws["id"],
        "@write x.txt inside",
        "@bash ln x.txt y.txt",
        "@bash echo mine > /tmp/own && ln /tmp/own own.txt",
        "@bash ln /etc/passwd passwd.txt",
        f"@bash ln {loot.data_dir}/canary.txt canary.txt",
    )
    assert task["status"] == "succeeded", task
    results = await tool_outputs(task_app, alice, task["id"])
    assert results[1]["ok"] and not results[2]["ok"] and not results[3]["ok"]
    assert "Invalid cross-device link" in results[2]["output"] and not results[4]["ok"]
    assert committed(task_settings, ws["id"], task) == {**BASE, "x.txt": (FILE, b"inside"),
                                                        "y.txt": (FILE, b"inside")}
    await assert_nothing_leaked(task_app, alice, task, loot)


async def test_a_deeply_nested_folder_does_not_fail_the_turn(task_app, workspace, task_settings) -> None:
    ws, alice = workspace
    task = await attack(
        task_app, alice, ws["id"],
        "@bash i=0; while [ $i -lt 400 ]; do mkdir d && cd d || exit 1; i=$((i+1)); done; echo deep > leaf.txt",
        "@write legit.txt legit",
    )
    assert task["status"] == "succeeded", task
    files = committed(task_settings, ws["id"], task)
    assert files["legit.txt"] == (FILE, b"legit")
    # Past the depth limit the folder is left out and named (by its path at the limit) in the notice.
    notice = await not_committed_notice(task_app, alice, task["id"])
    assert not any(path.endswith("leaf.txt") for path in files)
    assert "d/" * 199 + "d: nested deeper than" in notice


async def test_the_servers_git_store_is_not_visible_inside_the_container(
    task_app, workspace, task_settings, loot
) -> None:
    ws, alice = workspace
    store = task_settings.data_dir / "git"
    task = await attack(
        task_app, alice, ws["id"],
        f"@bash ls -la / /workspace; mount; cat /proc/mounts /proc/self/mountinfo; "
        f"for p in {store} {loot.bob_mirror}; do test -e $p && echo VISIBLE; done; find / -name '*.git' 2>/dev/null",
    )
    assert task["status"] == "succeeded", task
    [result] = await tool_outputs(task_app, alice, task["id"])
    seen = result["output"]
    assert " /workspace " in seen  # the listing really ran
    assert str(mirror_path(task_settings.data_dir, ws["id"])) not in seen and str(loot.bob_mirror) not in seen
    assert "git/mirrors" not in seen and "VISIBLE" not in seen
