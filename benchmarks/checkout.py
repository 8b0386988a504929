"""How to make a task's working copy from the workspace mirror: a local clone or a git worktree.

    python benchmarks/checkout.py [--files 20000]

Builds a mirror of a generated repository with many files, then times, several times each, a
pygit2 local clone (what aicode does) and a worktree added to the mirror.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import pygit2

from harness import make_repo


def timed(action, runs: int) -> list[float]:
    times = []
    for index in range(runs):
        started = time.perf_counter()
        action(index)
        times.append(time.perf_counter() - started)
    return times


def main(files: int, runs: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="aicode-checkout-"))
    try:
        make_repo(root / "source", files)
        subprocess.run(["git", "clone", "-q", "--mirror", str(root / "source"), str(root / "mirror.git")], check=True)
        size = sum(p.stat().st_size for p in (root / "source").rglob("*") if ".git" not in p.parts and p.is_file()) / 1e6
        mirror = pygit2.Repository(str(root / "mirror.git"))

        def clone(index: int) -> None:
            pygit2.clone_repository(str(root / "mirror.git"), str(root / f"clone-{index}"), checkout_branch="main")

        def worktree(index: int) -> None:
            # Each worktree needs a branch of its own, as each task has.
            branch = mirror.branches.local.create(f"task-{index}", mirror.branches.local["main"].peel())
            mirror.add_worktree(f"wt-{index}", str(root / f"wt-{index}"), branch)

        clones, worktrees = timed(clone, runs), timed(worktree, runs)
        print(f"repository: {files} files, {size:.0f} MB on disk")
        print(f"local clone: median {statistics.median(clones) * 1000:.0f} ms")
        print(f"worktree:    median {statistics.median(worktrees) * 1000:.0f} ms")
        print(f"clone / worktree: {statistics.median(clones) / statistics.median(worktrees):.2f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    main(args.files, args.runs)
