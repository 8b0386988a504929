"""The mbox patch series (aicode/git/patches.py and GET /api/tasks/{id}/patch), checked against
`git format-patch` itself and applied with `git am`."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from aicode import __version__
from aicode.git.patches import PatchSeriesError, format_patch_series, mail_date
from aicode.settings import Settings
from tests.tasks_support import finished, mirror_path, submit

SIGNATURE = "aicode test"


def run_git(cwd: Path, *args: str, stdin: str | None = None, **env: str) -> str:
    base = {"GIT_AUTHOR_NAME": "A U Thor", "GIT_AUTHOR_EMAIL": "author@example.com",
            "GIT_COMMITTER_NAME": "C O Mitter", "GIT_COMMITTER_EMAIL": "committer@example.com"}
    result = subprocess.run(["git", *args], cwd=cwd, input=stdin, capture_output=True, text=True, check=True,
                            env={**os.environ, **base, **env})
    return result.stdout


def format_patch(repo: Path, base: str, head: str) -> str:
    return run_git(repo, "format-patch", "--stdout", f"--signature={SIGNATURE}", f"{base}..{head}")


class History:
    """A repository that grows one commit at a time, remembering where it started."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir()
        run_git(path, "init", "-q", "-b", "main")
        (path / "a.txt").write_text("a\nb\n")
        (path / "src").mkdir()
        (path / "src" / "old_name.py").write_text("x = 1\n" * 20)
        (path / "gone.txt").write_text("bye\n")
        self.commit("initial commit")
        self.base = self.head

    def commit(self, message: str, **env: str) -> None:
        run_git(self.path, "add", "-A")
        run_git(self.path, "commit", "-q", "--allow-empty-message", "-m", message, **env)

    @property
    def head(self) -> str:
        return run_git(self.path, "rev-parse", "HEAD").strip()


@pytest.fixture
def history(tmp_path: Path) -> History:
    return History(tmp_path / "repo")


def test_a_series_is_byte_for_byte_what_git_format_patch_writes(history: History) -> None:
    root = history.path
    (root / "a.txt").write_text("a\nc\n")
    (root / "n.txt").write_text("new\n")
    (root / "gone.txt").unlink()
    history.commit("short title")
    (root / "n.txt").write_text("new\nmore\n")
    history.commit("a long title that is surely more than seventy-eight characters once the Subject header "
                   "is in front of it\n\nbody with trailing spaces  \n\n\nmore\n\n")
    (root / "some" / "very" / "long" / "directory" / "name").mkdir(parents=True)
    (root / "some/very/long/directory/name/the_stat_truncates_long_file_names_like_this.txt").write_text(
        "".join(f"{i}\n" for i in range(200)))
    history.commit("a big change that scales the stat graph")
    for i in range(9):  # 12 patches in all: numbered 01/12 … 12/12
        (root / f"f{i}").write_text(str(i))
        history.commit(f"commit {i}")
    assert format_patch_series(root, history.base, history.head, signature=SIGNATURE) == \
        format_patch(root, history.base, history.head)


def test_non_ascii_quoted_names_renames_and_modes_read_as_git_writes_them(history: History) -> None:
    root = history.path
    (root / "ü.txt").write_text("héllo\n")
    history.commit("Grüße aus Köln — ein längerer Betreff mit Umlauten, der über die Zeilengrenze hinausgeht\n\n"
                   "Körper\n")
    (root / "a.txt").write_text("dotted\n")
    history.commit("an author whose name needs quoting", GIT_AUTHOR_NAME="j.doe",
                   GIT_AUTHOR_DATE="2024-03-05T07:08:09-0530")
    run_git(root, "mv", "src/old_name.py", "src/new_name.py")
    history.commit("rename")
    os.chmod(root / "a.txt", 0o755)
    (root / 'we"ird name.txt').write_text("q\n")
    history.commit("mode change and a name git quotes")
    assert format_patch_series(root, history.base, history.head, signature=SIGNATURE) == \
        format_patch(root, history.base, history.head)


def test_git_am_applies_the_series_with_binary_files_author_and_message_kept(history: History,
                                                                             tmp_path: Path) -> None:
    root = history.path
    (root / "image.bin").write_bytes(bytes(range(256)) * 10)
    history.commit("[partial] a binary file\n\nwith a body\n", GIT_AUTHOR_DATE="2024-01-02T03:04:05+0200")
    (root / "image.bin").write_bytes(bytes(range(255, -1, -1)) * 3)
    history.commit("change it")
    mbox = format_patch_series(root, history.base, history.head, signature=SIGNATURE)
    clone = tmp_path / "clone"
    run_git(tmp_path, "clone", "-q", str(root), str(clone))
    run_git(clone, "checkout", "-q", "-b", "applied", history.base)
    run_git(clone, "am", "--keep-non-patch", "-q", stdin=mbox)
    fields = "%T%n%an <%ae> %ad%n%B"
    assert run_git(clone, "log", f"--format={fields}", f"{history.base}..HEAD") == \
        run_git(root, "log", f"--format={fields}", f"{history.base}..{history.head}")


def test_an_empty_range_is_an_empty_series_and_an_unknown_commit_an_error(history: History) -> None:
    assert format_patch_series(history.path, history.head, history.head, signature=SIGNATURE) == ""
    with pytest.raises(PatchSeriesError):
        format_patch_series(history.path, "0" * 40, history.head, signature=SIGNATURE)


def test_mail_dates_use_the_commits_own_timezone_in_english() -> None:
    assert mail_date(0, 0) == "Thu, 1 Jan 1970 00:00:00 +0000"
    assert mail_date(1709642289, -330) == "Tue, 5 Mar 2024 07:08:09 -0530"


# -- the endpoint -----------------------------------------------------------------------------------


@pytest.mark.timeout(180)
async def test_the_patch_endpoint_serves_the_tasks_commits_as_git_writes_them(
    task_app: AsyncTestClient, workspace, task_settings: Settings
) -> None:
    ws, alice = workspace
    task = await finished(task_app, alice, (await submit(task_app, alice, ws["id"], "@write one.txt 1"))["id"])
    await task_app.post(f"/api/tasks/{task['id']}/messages", json={"prompt": "@write two.txt 2"}, headers=alice)
    task = await finished(task_app, alice, task["id"])
    response = await task_app.get(f"/api/tasks/{task['id']}/patch", headers=alice)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/mbox")
    store = mirror_path(task_settings.data_dir, ws["id"])
    # The store belongs to the git uid when the server runs as root: git needs to be told it is safe.
    expected = run_git(store, "-c", "safe.directory=*", "format-patch", "--stdout", f"--signature=aicode {__version__}",
                       f"{task['base_commit']}..{task['head_commit']}")
    assert response.text == expected
    assert "Subject: [PATCH 1/2] @write one.txt 1" in response.text


async def test_a_task_without_commits_has_an_empty_patch(task_app: AsyncTestClient, workspace) -> None:
    ws, alice = workspace
    task = await finished(task_app, alice, (await submit(task_app, alice, ws["id"], "@say nothing"))["id"])
    response = await task_app.get(f"/api/tasks/{task['id']}/patch", headers=alice)
    assert response.status_code == 200 and response.text == ""
    other = await task_app.get("/api/tasks/00000000-0000-4000-8000-000000000000/patch", headers=alice)
    assert other.status_code == 404
