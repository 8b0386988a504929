"""A range of commits as an mbox patch series, as `git format-patch --stdout base..head` writes it.

Blocking (pygit2): run it in a thread. The mail headers follow git's pretty.c (subject folding at
78 columns, RFC 2047 for non-ASCII, RFC 822 quoting of names), so `git am` on the client restores
author, date and message exactly. Differences from git's bytes: the signature under "-- " names
aicode, not a git version; binary patches are compressed by libgit2 (same content, other bytes);
the similarity of an inexact rename is libgit2's estimate; and abbreviated blob ids in `index`
lines are always 7 characters (git lengthens them in very large repositories).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pygit2

from aicode.git.diffstat import diffstat, patches, summary

__all__ = ["PatchSeriesError", "format_patch_series", "mail_date"]

_MAX_HEADER = 78
_MAX_ENCODED = 76  # RFC 2047's limit for one encoded word line
_RFC822_SPECIALS = set('()<>[]:;@,."\\')
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_C_SPACE = " \t\n\v\f\r"  # C's isspace(), which git's text handling uses
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class PatchSeriesError(Exception):
    """The range cannot be made into patches (unknown commit, base not an ancestor of head)."""


def _wrapped(text: str, used: int, width: int = _MAX_HEADER) -> str:
    """git's strbuf_add_wrapped_text(text, -used, 1, width) for one line of ASCII: fold at spaces,
    continuation lines indented by one space, the first line already `used` columns long."""
    out: list[str] = []
    i = bol = 0
    width_so_far = used
    # Where the current line may break; at the start, before the text (the header name precedes it).
    space: int | None = 0
    while True:
        c = text[i] if i < len(text) else ""
        if c and c not in _C_SPACE:
            width_so_far, i = width_so_far + 1, i + 1
            continue
        if width_so_far <= width or space is None:
            if not c and i == bol:
                return "".join(out)
            out.append(text[space:i] if space is not None else " " + text[bol:i])
            if not c:
                return "".join(out)
            space = i
            width_so_far = (width_so_far | 7) + 1 if c == "\t" else width_so_far + 1
            i += 1
        else:
            out.append("\n")
            i = bol = space + (1 if space < len(text) and text[space] in _C_SPACE else 0)
            space, width_so_far = None, 1


def _needs_rfc2047(text: str) -> bool:
    return any(ord(c) >= 0x80 or c == "\n" for c in text) or "=?" in text


def _rfc2047_special(byte: int, address: bool) -> bool:
    if byte >= 0x80 or not (0x20 <= byte < 0x7F) or chr(byte) in " =?_":
        return True
    return address and not (chr(byte).isalnum() or chr(byte) in "!*+-/")


def _rfc2047(text: str, used: int, *, address: bool) -> str:
    """Q-encoded words ("=?UTF-8?q?...?="), folded so that no line passes 76 columns, never
    splitting a character, as git's add_rfc2047 does."""
    out = ["=?UTF-8?q?"]
    line_len = used + len("UTF-8") + 5
    for char in text:
        raw = char.encode()
        special = len(raw) > 1 or _rfc2047_special(raw[0], address)
        encoded = "".join(f"={b:02X}" for b in raw) if special else char
        if line_len + len(encoded) + 2 > _MAX_ENCODED:
            out.append("?=\n =?UTF-8?q?")
            line_len = len("UTF-8") + 5 + 1
        out.append(encoded)
        line_len += len(encoded)
    out.append("?=")
    return "".join(out)


def _from_header(name: str, email: str) -> str:
    head, limit = "From: ", _MAX_HEADER
    if _needs_rfc2047(name):
        value = _rfc2047(name, len(head), address=True)
        limit = _MAX_ENCODED
    elif any(c in _RFC822_SPECIALS for c in name):
        quoted = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
        value = _wrapped(quoted, len(head))
    else:
        value = _wrapped(name, len(head))
    line = head + value
    last = len(line) - line.rfind("\n") - 1
    separator = "\n" if limit < last + 2 + len(email) + 1 else ""
    return f"{line}{separator} <{email}>\n"


def mail_date(when: int, offset_minutes: int) -> str:
    """RFC 2822 date in the commit's own timezone, English names whatever the locale."""
    zone = dt.timezone(dt.timedelta(minutes=offset_minutes))
    t = dt.datetime.fromtimestamp(when, zone)
    sign = "-" if offset_minutes < 0 else "+"
    hours, minutes = divmod(abs(offset_minutes), 60)
    return (f"{_DAYS[t.weekday()]}, {t.day} {_MONTHS[t.month - 1]} {t.year} "
            f"{t.hour:02d}:{t.minute:02d}:{t.second:02d} {sign}{hours:02d}{minutes:02d}")


def _split_message(message: str) -> tuple[str, str]:
    """(subject, body): the first paragraph joined into one line, and the rest with trailing blanks
    trimmed from every line and from the end, as git's pretty-printer does."""
    lines = [line.rstrip(_C_SPACE) for line in message.split("\n")]
    while lines and not lines[0]:
        lines.pop(0)
    title: list[str] = []
    while lines and lines[0]:
        title.append(lines.pop(0))
    while lines and not lines[0]:
        lines.pop(0)
    return " ".join(title), "\n".join(lines).rstrip(_C_SPACE)


def _mail(repo: pygit2.Repository, commit: pygit2.Commit, number: int, total: int, signature: str) -> str:
    subject, body = _split_message(commit.message)
    prefix = "[PATCH] " if total == 1 else f"[PATCH {number:0{len(str(total))}d}/{total}] "
    head = "Subject: " + prefix
    encoded = _needs_rfc2047(subject)
    subject_line = _rfc2047(subject, len(head), address=False) if encoded else _wrapped(subject, len(head))
    author = commit.author
    parts = [
        f"From {commit.id} Mon Sep 17 00:00:00 2001\n",
        _from_header(author.name, author.email),
        f"Date: {mail_date(author.time, author.offset)}\n",
        f"{head}{subject_line}\n",
    ]
    if any(ord(c) >= 0x80 for c in commit.message):
        parts.append("MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n")
    parts.append("\n" + (body + "\n" if body else ""))
    diff = repo.diff(commit.parents[0], commit, flags=pygit2.enums.DiffOption.SHOW_BINARY)
    diff.find_similar(flags=pygit2.enums.DiffFind.FIND_RENAMES)
    patch_text = "".join(_git_file_header(patch.text or "") for patch in patches(diff))
    parts += ["---\n", diffstat(diff), summary(diff), "\n", patch_text, f"-- \n{signature}\n\n"]
    return "".join(parts)


def _git_file_header(text: str) -> str:
    """git ends a `---`/`+++` line with a tab when the name holds a space (for GNU patch); libgit2 does not."""
    lines = text.split("\n")
    for index, line in enumerate(lines):
        if line.startswith(("@@", "GIT binary patch", "Binary files")):
            break
        if line.startswith(("--- ", "+++ ")) and " " in line[4:] and line[4:] != "/dev/null":
            lines[index] = line + "\t"
    return "\n".join(lines)


def format_patch_series(checkout: Path, base: str, head: str, *, signature: str) -> str:
    """Every non-merge commit in base..head, oldest first, one mail each; '' when there are none."""
    repo = pygit2.Repository(str(checkout))
    try:
        try:
            walker = repo.walk(repo.revparse_single(head).id,
                               pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.REVERSE)
            walker.hide(repo.revparse_single(base).id)
        except (KeyError, ValueError, pygit2.GitError) as exc:
            raise PatchSeriesError(f"cannot list the commits {base}..{head}: {exc}") from None
        commits = [commit for commit in walker if len(commit.parents) == 1]
        return "\n".join(_mail(repo, c, n, len(commits), signature) for n, c in enumerate(commits, start=1))
    finally:
        repo.free()
