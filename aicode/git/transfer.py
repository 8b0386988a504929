"""A task's commits as bytes to store centrally, and back into another node's mirror.

A turn adds a few commits, with the trees and blobs they changed, to the workspace's history. Those
objects (and no others: the base history is in every node's mirror of the workspace) are packed as
a sequence of (type, zlib(raw)) records; importing writes each one and checks that it hashes to the
id it was stored under, so a damaged record is caught rather than half-written into history.
Functions here run in a git worker, like everything that opens the store.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pygit2

from aicode.git.checkout import CheckoutError

__all__ = ["TransferError", "export_objects", "has_commit", "import_objects"]

_HEADER = struct.Struct(">20sBQ")  # object id, type, compressed length
_MAGIC = b"aicode-objects-1\n"


class TransferError(Exception):
    """Stored objects that cannot be read back, or a pack too large to store."""


def _open(mirror: Path) -> pygit2.Repository:
    try:
        return pygit2.Repository(str(mirror))
    except pygit2.GitError as exc:
        raise CheckoutError(f"the workspace's mirror is unusable ({exc}): sync or re-add the workspace") from None


def _known(repo: pygit2.Repository, tree: pygit2.Tree, into: set[pygit2.Oid]) -> None:
    """Every tree and blob id under `tree` (subtrees read, blobs not)."""
    into.add(tree.id)
    for entry in tree:
        if entry.id in into:
            continue
        if entry.type_str == "tree":
            _known(repo, repo[entry.id].peel(pygit2.Tree), into)
        else:
            into.add(entry.id)


def _added(repo: pygit2.Repository, tree: pygit2.Tree, known: set[pygit2.Oid], out: list[pygit2.Oid]) -> None:
    """Ids under `tree` not in `known`; a subtree already known is skipped whole."""
    if tree.id in known:
        return
    known.add(tree.id)
    out.append(tree.id)
    for entry in tree:
        if entry.id in known or entry.type_str == "commit":  # a submodule's commit is not ours to carry
            continue
        if entry.type_str == "tree":
            _added(repo, repo[entry.id].peel(pygit2.Tree), known, out)
        else:
            known.add(entry.id)
            out.append(entry.id)


def export_objects(mirror: Path, since: str, head: str, limit: int) -> bytes:
    """The objects `head` adds to `since` (its commits, and the trees and blobs they bring), packed;
    TransferError when they come to more than `limit` bytes."""
    repo = _open(mirror)
    try:
        known: set[pygit2.Oid] = set()
        _known(repo, repo[since].peel(pygit2.Commit).tree, known)
        walker = repo.walk(pygit2.Oid(hex=head), pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.REVERSE)
        walker.hide(pygit2.Oid(hex=since))
        ids: list[pygit2.Oid] = []
        for commit in walker:
            _added(repo, commit.tree, known, ids)
            ids.append(commit.id)
        chunks = [_MAGIC]
        size = len(_MAGIC)
        for oid in ids:
            kind, raw = repo.odb.read(oid)
            packed = zlib.compress(raw, 6)
            size += _HEADER.size + len(packed)
            if size > limit:
                raise TransferError(f"the turn's commits come to more than {limit // (1024 * 1024)} MB")
            chunks.append(_HEADER.pack(oid.raw, int(kind), len(packed)))
            chunks.append(packed)
        return b"".join(chunks)
    except (pygit2.GitError, KeyError, ValueError) as exc:
        raise TransferError(f"could not read the turn's commits: {exc}") from None
    finally:
        repo.free()


def import_objects(mirror: Path, packs: list[bytes], ref: str, head: str) -> None:
    """Write the objects of `packs` (oldest turn first) into the mirror and point `ref` at `head`."""
    repo = _open(mirror)
    try:
        for data in packs:
            if not data.startswith(_MAGIC):
                raise TransferError("stored task objects are not in a known format")
            offset = len(_MAGIC)
            while offset < len(data):
                if offset + _HEADER.size > len(data):
                    raise TransferError("stored task objects are truncated")
                raw_id, kind, length = _HEADER.unpack_from(data, offset)
                offset += _HEADER.size
                body = data[offset:offset + length]
                offset += length
                if len(body) != length:
                    raise TransferError("stored task objects are truncated")
                written = repo.odb.write(kind, zlib.decompress(body))
                if written.raw != raw_id:
                    raise TransferError("stored task objects do not match their ids")
        commit = repo[head].peel(pygit2.Commit)
        repo.references.create(ref, commit.id, force=True)
    except (pygit2.GitError, KeyError, ValueError, zlib.error) as exc:
        raise TransferError(f"could not restore the task's commits: {exc}") from None
    finally:
        repo.free()


def has_commit(mirror: Path, ref: str, head: str) -> bool:
    """Whether the mirror's `ref` already points at `head` (the task's history is here, up to date)."""
    repo = _open(mirror)
    try:
        return ref in repo.references and str(repo.references[ref].target) == head
    finally:
        repo.free()
