"""The code line a review comment refers to, read from the task's unified diff."""

from __future__ import annotations

import re

__all__ = ["quote_from_diff"]

_HUNK = re.compile(r"^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@")
# A quoted line is shown to the agent and in lists: a minified file's one line is cut.
MAX_QUOTE_CHARS = 500


def _sections(diff: str) -> list[list[str]]:
    """The diff split into one list of lines per file."""
    sections: list[list[str]] = []
    for line in diff.splitlines():
        if line.startswith("diff --git ") or not sections:
            sections.append([])
        sections[-1].append(line)
    return sections


def _names(section: list[str]) -> set[str]:
    names = set()
    for line in section:
        if line.startswith("@@"):
            break
        for prefix in ("--- a/", "+++ b/", "rename from ", "rename to "):
            if line.startswith(prefix):
                names.add(line[len(prefix):])
    return names


def _find(section: list[str], line_no: int, side: str) -> str | None:
    old = new = 0
    in_hunk = False
    for line in section:
        hunk = _HUNK.match(line)
        if hunk:
            old, new, in_hunk = int(hunk.group(1)), int(hunk.group(2)), True
            continue
        if not in_hunk or line.startswith("\\"):
            continue
        mark, text = line[:1], line[1:]
        if mark in (" ", "-") and side == "old" and old == line_no:
            return text
        if mark in (" ", "+") and side == "new" and new == line_no:
            return text
        old += mark in (" ", "-")
        new += mark in (" ", "+")
    return None


def quote_from_diff(diff: str, path: str, line: int, side: str) -> str | None:
    """Line `line` of `path` on `side` ("new": the head's version, "old": the base's) if the diff shows it
    (a changed line or its context); None when it lies outside every hunk."""
    for section in _sections(diff):
        if path in _names(section):
            found = _find(section, line, side)
            return None if found is None else found[:MAX_QUOTE_CHARS]
    return None
