"""resolve_local_git_dir: every place libgit2 would read a local repository's git data from must lie
under an allowed root and outside the server's own folders. Real repositories made with the git CLI."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from aicode.errors import InvalidInputError
from aicode.workspaces.sources import parse_repo_source, resolve_local_git_dir
from tests.conftest import git


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "repos"
    path.mkdir()
    return path


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    path = tmp_path / "outside"
    path.mkdir()
    return path


def make_repo(path: Path, *args: str) -> Path:
    """A repository at `path` (extra `git init` arguments allowed) with one commit on `trunk`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    git(path.parent, "init", "-q", "-b", "trunk", *args, str(path))
    if "--bare" in args:
        seed = make_repo(path.parent / f".{path.name}-seed")
        git(seed, "push", "-q", str(path), "trunk")
        shutil.rmtree(seed)
    else:
        (path / "README.md").write_text(f"# {path.name}\n")
        git(path, "add", ".")
        git(path, "commit", "-q", "-m", f"initial commit of {path.name}")
    return path


def write_alternates(objects: Path, *lines: str) -> None:
    (objects / "info").mkdir(exist_ok=True)
    (objects / "info" / "alternates").write_text("".join(line + "\n" for line in lines))


def refusal(path: Path, roots: tuple[Path, ...], forbidden: tuple[Path, ...] = ()) -> str:
    with pytest.raises(InvalidInputError) as caught:
        resolve_local_git_dir(path, roots, forbidden)
    return caught.value.detail


# -- what passes ------------------------------------------------------------------------------------


def test_plain_repository_passes_and_returns_its_git_dir(root: Path) -> None:
    repo = make_repo(root / "project")
    assert resolve_local_git_dir(repo, (root,)) == repo / ".git"


def test_bare_repository_is_its_own_git_dir(root: Path) -> None:
    repo = make_repo(root / "project.git", "--bare")
    assert resolve_local_git_dir(str(repo), (root,)) == repo


def test_gitfile_pointing_inside_the_roots_passes(root: Path) -> None:
    repo = make_repo(root / "work", f"--separate-git-dir={root / 'store.git'}")
    assert (repo / ".git").is_file()
    assert resolve_local_git_dir(repo, (root,)) == root / "store.git"


def test_relative_gitfile_is_resolved_against_its_folder(root: Path) -> None:
    repo = make_repo(root / "work", f"--separate-git-dir={root / 'store.git'}")
    (repo / ".git").write_text("gitdir: ../store.git\n")
    assert resolve_local_git_dir(repo, (root,)) == root / "store.git"


def test_alternates_inside_the_roots_pass(root: Path) -> None:
    make_repo(root / "base")
    git(root, "clone", "-q", "--shared", str(root / "base"), str(root / "borrower"))
    assert (root / "borrower/.git/objects/info/alternates").is_file()
    assert resolve_local_git_dir(root / "borrower", (root,)) == root / "borrower/.git"


@pytest.mark.timeout(5)
def test_alternates_cycle_terminates_and_passes_when_every_store_is_inside(root: Path) -> None:
    """Decision: a cycle is not an error in itself (libgit2 de-duplicates stores too); each store in it
    is checked once, so the walk ends and passes when all of them are inside the roots."""
    first, second = make_repo(root / "first"), make_repo(root / "second")
    write_alternates(first / ".git/objects", str(second / ".git/objects"))
    write_alternates(second / ".git/objects", str(first / ".git/objects"))
    assert resolve_local_git_dir(first, (root,)) == first / ".git"


def test_relative_alternates_are_resolved_against_the_objects_dir(root: Path) -> None:
    make_repo(root / "base")
    repo = make_repo(root / "project")
    # From <root>/project/.git/objects, three levels up is <root>.
    write_alternates(repo / ".git/objects", "../../../base/.git/objects")
    assert resolve_local_git_dir(repo, (root,)) == repo / ".git"


def test_linked_worktree_inside_the_roots_passes(root: Path) -> None:
    main = make_repo(root / "main")
    git(main, "worktree", "add", "-q", str(root / "tree"))
    assert resolve_local_git_dir(root / "tree", (root,)) == main / ".git/worktrees/tree"


def test_alternates_five_levels_deep_pass(root: Path) -> None:
    chain = [make_repo(root / f"level{i}") for i in range(6)]
    for near, far in zip(chain, chain[1:], strict=False):
        write_alternates(near / ".git/objects", str(far / ".git/objects"))
    assert resolve_local_git_dir(chain[0], (root,)) == chain[0] / ".git"


def test_parse_repo_source_accepts_a_clean_repository(root: Path) -> None:
    repo = make_repo(root / "project")
    assert parse_repo_source(str(repo), None, (root,)).url == str(repo)


# -- what is refused --------------------------------------------------------------------------------


def test_gitfile_pointing_outside_the_roots_is_refused(root: Path, outside: Path) -> None:
    repo = make_repo(root / "work", f"--separate-git-dir={outside / 'store.git'}")
    detail = refusal(repo, (root,))
    assert "outside the folders this server allows" in detail
    assert str(outside / "store.git") in detail


def test_dot_git_symlinked_outside_is_refused(root: Path, outside: Path) -> None:
    elsewhere = make_repo(outside / "secret")
    (root / "work").mkdir()
    (root / "work/.git").symlink_to(elsewhere / ".git", target_is_directory=True)
    assert "outside the folders this server allows" in refusal(root / "work", (root,))


def test_alternates_into_a_folder_outside_the_roots_are_refused(root: Path, outside: Path) -> None:
    make_repo(outside / "secret")
    git(root, "clone", "-q", "--shared", str(outside / "secret"), str(root / "borrower"))
    assert "outside the folders this server allows" in refusal(root / "borrower", (root,))


def test_nested_alternates_leading_outside_are_refused(root: Path, outside: Path) -> None:
    make_repo(outside / "secret")
    git(root, "clone", "-q", "--shared", str(outside / "secret"), str(root / "middle"))
    git(root, "clone", "-q", "--shared", str(root / "middle"), str(root / "front"))
    detail = refusal(root / "front", (root,))
    assert str(outside / "secret/.git/objects") in detail


def test_relative_alternates_leading_outside_are_refused(root: Path, outside: Path) -> None:
    make_repo(outside / "secret")
    repo = make_repo(root / "project")
    write_alternates(repo / ".git/objects", "../../../../outside/secret/.git/objects")
    assert "outside the folders this server allows" in refusal(repo, (root,))


def test_relative_alternates_without_a_leading_dot_are_refused(root: Path) -> None:
    """libgit2 resolves them against the server's working directory, not the objects folder."""
    make_repo(root / "base")
    repo = make_repo(root / "project")
    # git would read this as <root>/base/.git/objects; libgit2 as <cwd>/pack/../../../../base/.git/objects.
    write_alternates(repo / ".git/objects", "pack/../../../../base/.git/objects")
    assert "relative path" in refusal(repo, (root,))


def test_relative_alternates_in_a_borrowed_store_are_refused(root: Path) -> None:
    make_repo(root / "base")
    middle, repo = make_repo(root / "middle"), make_repo(root / "project")
    write_alternates(repo / ".git/objects", str(middle / ".git/objects"))
    # git ignores relative alternates below the first level; libgit2 resolves them against its cwd.
    write_alternates(middle / ".git/objects", "../../../base/.git/objects")
    assert "relative path" in refusal(repo, (root,))


def test_alternates_six_levels_deep_are_refused(root: Path) -> None:
    chain = [make_repo(root / f"level{i}") for i in range(7)]
    for near, far in zip(chain, chain[1:], strict=False):
        write_alternates(near / ".git/objects", str(far / ".git/objects"))
    assert "more than 5 alternates deep" in refusal(chain[0], (root,))


def test_commondir_outside_is_refused(root: Path, outside: Path) -> None:
    main = make_repo(outside / "main")
    git(main, "worktree", "add", "-q", str(root / "tree"))
    # Move the worktree's git dir inside the roots; only its commondir still leads out.
    shutil.move(main / ".git/worktrees/tree", root / "tree-git")
    (root / "tree-git/commondir").write_text(f"{main / '.git'}\n")
    (root / "tree/.git").write_text(f"gitdir: {root / 'tree-git'}\n")
    detail = refusal(root / "tree", (root,))
    assert "commondir" in detail
    assert str(main / ".git") in detail


def test_objects_dir_symlinked_outside_is_refused(root: Path, outside: Path) -> None:
    secret = make_repo(outside / "secret")
    repo = make_repo(root / "project.git", "--bare")
    shutil.rmtree(repo / "objects")
    (repo / "objects").symlink_to(secret / ".git/objects", target_is_directory=True)
    assert "outside the folders this server allows" in refusal(repo, (root,))


def test_symlinked_pack_file_is_refused(root: Path) -> None:
    repo = make_repo(root / "project")
    git(repo, "repack", "-q", "-a", "-d")
    pack = next((repo / ".git/objects/pack").glob("*.pack"))
    moved = root / "elsewhere.pack"
    shutil.move(pack, moved)
    pack.symlink_to(moved)  # even a link that stays inside the roots: libgit2 would follow any
    assert f"{pack} is a symlink" in refusal(repo, (root,))


def test_symlinked_loose_object_folder_is_refused(root: Path) -> None:
    repo = make_repo(root / "project")
    folder = next(p for p in (repo / ".git/objects").iterdir() if len(p.name) == 2)
    moved = root / "loose"
    shutil.move(folder, moved)
    folder.symlink_to(moved, target_is_directory=True)
    assert f"{folder} is a symlink" in refusal(repo, (root,))


def test_folder_with_a_broken_dot_git_is_checked_as_a_bare_repository(root: Path, outside: Path) -> None:
    """libgit2 falls back to the folder itself when `.git` is not a git dir: so must the check."""
    secret = make_repo(outside / "secret")
    repo = make_repo(root / "project.git", "--bare")
    (repo / ".git").mkdir()
    shutil.rmtree(repo / "objects")
    (repo / "objects").symlink_to(secret / ".git/objects", target_is_directory=True)
    assert "outside the folders this server allows" in refusal(repo, (root,))


def test_path_inside_a_forbidden_folder_is_refused_although_under_a_root(root: Path) -> None:
    data = root / "data"
    mirror = make_repo(data / "mirrors/other.git", "--bare")
    assert "this server's own data folder" in refusal(mirror, (root,), (data,))


def test_alternates_into_a_forbidden_folder_are_refused(root: Path) -> None:
    data = root / "data"
    mirror = make_repo(data / "mirrors/other.git", "--bare")
    repo = make_repo(root / "project")
    write_alternates(repo / ".git/objects", str(mirror / "objects"))
    assert "this server's own data folder" in refusal(repo, (root,), (data,))


def test_parse_repo_source_refuses_a_repository_that_borrows_from_outside(root: Path, outside: Path) -> None:
    make_repo(outside / "secret")
    git(root, "clone", "-q", "--shared", str(outside / "secret"), str(root / "borrower"))
    with pytest.raises(InvalidInputError, match="outside the folders this server allows"):
        parse_repo_source(str(root / "borrower"), None, (root,))


@pytest.mark.timeout(5)
def test_gitfile_that_is_a_fifo_is_refused_without_hanging(root: Path) -> None:
    (root / "work").mkdir()
    os.mkfifo(root / "work/.git")
    assert "neither a folder nor a gitfile" in refusal(root / "work", (root,))


@pytest.mark.timeout(5)
def test_alternates_file_that_is_a_fifo_is_refused_without_hanging(root: Path) -> None:
    repo = make_repo(root / "project")
    (repo / ".git/objects/info").mkdir(exist_ok=True)
    os.mkfifo(repo / ".git/objects/info/alternates")
    assert "is not a regular file" in refusal(repo, (root,))


def test_oversized_alternates_file_is_refused(root: Path) -> None:
    repo = make_repo(root / "project")
    write_alternates(repo / ".git/objects", *(["# padding " + "x" * 1000] * 70))
    assert "larger than 64 KiB" in refusal(repo, (root,))


def test_http_alternates_are_refused(root: Path) -> None:
    repo = make_repo(root / "project")
    (repo / ".git/objects/info").mkdir(exist_ok=True)
    (repo / ".git/objects/info/http-alternates").write_text("https://example.com/objects\n")
    assert "http-alternates" in refusal(repo, (root,))


def test_refusal_names_the_offending_path_and_the_file_that_lists_it(root: Path, outside: Path) -> None:
    repo = make_repo(root / "project")
    write_alternates(repo / ".git/objects", str(outside / "stolen/objects"))
    detail = refusal(repo, (root,))
    assert str(repo) in detail
    assert str(outside / "stolen/objects") in detail
    assert str(repo / ".git/objects/info/alternates") in detail


def test_refusal_does_not_reveal_where_a_symlink_leads(root: Path, outside: Path) -> None:
    secret = make_repo(outside / "hidden-location")
    repo = make_repo(root / "project")
    write_alternates(repo / ".git/objects", str(root / "innocent"))
    (root / "innocent").symlink_to(secret / ".git/objects", target_is_directory=True)
    detail = refusal(repo, (root,))
    assert str(root / "innocent") in detail
    assert "hidden-location" not in detail


@pytest.mark.parametrize(("url", "token", "credential"), [
    ("https://host.example/r.git", None, None),
    ("https://TOKEN@host.example/r.git", None, ("x-access-token", "TOKEN")),
    ("https://:TOKEN@host.example/r.git", None, ("x-access-token", "TOKEN")),
    ("https://me:pw@host.example/r.git", None, ("me", "pw")),
    ("https://me:old@host.example/r.git", "given", ("me", "given")),
    ("https://host.example/r.git", "given", ("x-access-token", "given")),
])
def test_an_https_source_carries_a_user_name_with_every_secret(
    url: str, token: str | None, credential: tuple[str, str] | None
) -> None:
    source = parse_repo_source(url, token, ())
    assert source.url == "https://host.example/r.git"
    assert source.credential == credential
