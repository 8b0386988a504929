"""git's diffstat and summary (`--stat --summary`), rendered byte for byte as git writes them in a patch mail.

Ports of diff.c's `show_stats`, `pprint_rename`, `diff_summary` and quote.c's `quote_c_style`, so a
patch series made with pygit2 reads exactly like one from `git format-patch`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pygit2

__all__ = ["MAIL_STAT_WIDTH", "diffstat", "patches", "quote_path", "summary"]

# format-patch's stat width (MAIL_DEFAULT_WRAP in git).
MAIL_STAT_WIDTH = 72

_C_ESCAPES = {0x07: "a", 0x08: "b", 0x09: "t", 0x0A: "n", 0x0B: "v", 0x0C: "f", 0x0D: "r", 0x22: '"', 0x5C: "\\"}


@dataclass(frozen=True, slots=True)
class _FileStat:
    name: str
    added: int
    deleted: int
    binary: bool


def _needs_quoting(raw: bytes) -> bool:
    # core.quotePath (on by default) also quotes bytes >= 0x80.
    return any(b < 0x20 or b == 0x7F or b >= 0x80 or b in (0x22, 0x5C) for b in raw)


def quote_path(path: str) -> str:
    """The path as git prints it: C-quoted with octal escapes when it holds special or non-ASCII bytes."""
    raw = path.encode("utf-8", "surrogateescape")
    if not _needs_quoting(raw):
        return path
    out = []
    for b in raw:
        if b in _C_ESCAPES:
            out.append("\\" + _C_ESCAPES[b])
        elif b < 0x20 or b >= 0x7F:
            out.append(f"\\{b:03o}")
        else:
            out.append(chr(b))
    return '"' + "".join(out) + '"'


def patches(diff: pygit2.Diff) -> Iterator[pygit2.Patch]:
    """The diff's patches. pygit2 has None for a file without changes, which only a diff asked to
    include unmodified files holds: none here does."""
    for patch in diff:
        assert patch is not None
        yield patch


def _rename_name(a: str, b: str) -> str:
    """`dir/{old => new}`: git's pprint_rename, sharing the common directory prefix and suffix."""
    if _needs_quoting(a.encode()) or _needs_quoting(b.encode()):
        return f"{quote_path(a)} => {quote_path(b)}"
    prefix = 0
    i = 0
    while i < len(a) and i < len(b) and a[i] == b[i]:
        if a[i] == "/":
            prefix = i + 1
        i += 1
    # Walk back from the terminating NUL of both names, as the C does; a common prefix ends in a
    # slash, which the suffix walk may see too.
    suffix = 0
    ia, ib = len(a), len(b)
    floor = prefix - (1 if prefix else 0)
    while floor <= ia and floor <= ib and (a[ia] if ia < len(a) else "\0") == (b[ib] if ib < len(b) else "\0"):
        if ia < len(a) and a[ia] == "/":
            suffix = len(a) - ia
        ia -= 1
        ib -= 1
    a_mid = max(len(a) - prefix - suffix, 0)
    b_mid = max(len(b) - prefix - suffix, 0)
    middle = f"{a[prefix:prefix + a_mid]} => {b[prefix:prefix + b_mid]}"
    if prefix + suffix:
        return f"{a[:prefix]}{{{middle}}}{a[len(a) - suffix:]}"
    return middle


def _file_stats(diff: pygit2.Diff) -> list[_FileStat]:
    stats = []
    for patch in patches(diff):
        delta = patch.delta
        if delta.status == pygit2.enums.DeltaStatus.RENAMED and delta.old_file.path != delta.new_file.path:
            name = _rename_name(delta.old_file.path, delta.new_file.path)
        else:
            name = quote_path(delta.new_file.path)
        if delta.is_binary:
            # git's binary stat counts bytes: old size as deleted, new size as added.
            stats.append(_FileStat(name, delta.new_file.size, delta.old_file.size, True))
        else:
            _, added, deleted = patch.line_stats
            stats.append(_FileStat(name, added, deleted, False))
    return stats


def _widths(stats: list[_FileStat], width: int) -> tuple[int, int, int]:
    """(name width, number width, graph width), as show_stats fits them into `width` columns."""
    max_len = max(len(s.name) for s in stats)
    max_change = max((s.added + s.deleted for s in stats if not s.binary), default=0)
    bin_width = max((14 + len(str(s.added)) + len(str(s.deleted)) for s in stats if s.binary), default=0)
    number_width = max(3 if bin_width else 0, len(str(max_change)))
    width = max(width, 16 + 6 + number_width)
    graph_width = max_change if max_change + 4 > bin_width else bin_width - 4
    name_width = max_len
    if name_width + number_width + 6 + graph_width > width:
        if graph_width > width * 3 // 8 - number_width - 6:
            graph_width = max(width * 3 // 8 - number_width - 6, 6)
        if name_width > width - number_width - 6 - graph_width:
            name_width = width - number_width - 6 - graph_width
        else:
            graph_width = width - number_width - 6 - name_width
    return name_width, number_width, graph_width


def _scale(value: int, width: int, max_change: int) -> int:
    return 0 if not value else 1 + (value * (width - 1) // max_change)


def _stat_line(stat: _FileStat, name_width: int, number_width: int, graph_width: int, max_change: int) -> str:
    name, prefix = stat.name, ""
    if name_width < len(name):
        prefix = "..."
        keep = max(name_width - 3, 0)
        name = name[len(name) - keep:]
        slash = name.find("/")
        if slash >= 0:
            name = name[slash:]
    room = max(name_width - 3, 0) if prefix else name_width
    padding = max(room - len(name), 0)
    head = f" {prefix}{name}{' ' * padding} | "
    if stat.binary:
        if not stat.added and not stat.deleted:
            return f"{head}{'Bin':>{number_width}}"
        return f"{head}{'Bin':>{number_width}} {stat.deleted} -> {stat.added} bytes"
    add, delete = stat.added, stat.deleted
    if graph_width <= max_change:
        total = _scale(add + delete, graph_width, max_change)
        if total < 2 and add and delete:
            total = 2
        if add < delete:
            add = _scale(add, graph_width, max_change)
            delete = total - add
        else:
            delete = _scale(delete, graph_width, max_change)
            add = total - delete
    changes = stat.added + stat.deleted
    return f"{head}{changes:>{number_width}}{' ' if changes else ''}{'+' * add}{'-' * delete}"


def _totals(stats: list[_FileStat]) -> str:
    files = len(stats)
    insertions = sum(s.added for s in stats if not s.binary)
    deletions = sum(s.deleted for s in stats if not s.binary)
    line = f" {files} file{'' if files == 1 else 's'} changed"
    if insertions or deletions == 0:
        line += f", {insertions} insertion{'' if insertions == 1 else 's'}(+)"
    if deletions or insertions == 0:
        line += f", {deletions} deletion{'' if deletions == 1 else 's'}(-)"
    return line


def diffstat(diff: pygit2.Diff, width: int = MAIL_STAT_WIDTH) -> str:
    """The `--stat` block: one line per file, then the totals line; '' for an empty diff."""
    stats = _file_stats(diff)
    if not stats:
        return ""
    name_width, number_width, graph_width = _widths(stats, width)
    max_change = max((s.added + s.deleted for s in stats if not s.binary), default=0)
    lines = [_stat_line(s, name_width, number_width, graph_width, max_change) for s in stats]
    return "\n".join([*lines, _totals(stats)]) + "\n"


def summary(diff: pygit2.Diff) -> str:
    """The `--summary` block: created, deleted and renamed files and mode changes."""
    lines = []
    for patch in patches(diff):
        delta = patch.delta
        old, new = delta.old_file, delta.new_file
        if delta.status == pygit2.enums.DeltaStatus.ADDED:
            lines.append(f" create mode {new.mode:06o} {quote_path(new.path)}")
        elif delta.status == pygit2.enums.DeltaStatus.DELETED:
            lines.append(f" delete mode {old.mode:06o} {quote_path(old.path)}")
        elif delta.status == pygit2.enums.DeltaStatus.RENAMED:
            lines.append(f" rename {_rename_name(old.path, new.path)} ({delta.similarity}%)")
            if old.mode != new.mode:
                lines.append(f" mode change {old.mode:06o} => {new.mode:06o}")
        elif old.mode and new.mode and old.mode != new.mode:
            lines.append(f" mode change {old.mode:06o} => {new.mode:06o} {quote_path(new.path)}")
    return "".join(line + "\n" for line in lines)
