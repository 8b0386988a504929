"""The follow-up prompt that hands a task's open review comments to its agent."""

from __future__ import annotations

from collections.abc import Sequence

from aicode.comments.repo import CommentRecord

__all__ = ["review_prompt"]

_SIDES = {"new": "in your version", "old": "in the version before your changes"}


def _indented(text: str, marker: str) -> list[str]:
    # Every line gets a marker, so no line of code or comment reads as an instruction of its own.
    return [f"   {marker} {line}".rstrip() for line in text.splitlines() or [""]]


def review_prompt(comments: Sequence[CommentRecord]) -> str:
    """One prompt listing each comment: where it points (path, line, side), the code there and what it says."""
    lines = ["Review comments on your changes. Address each one, then say briefly what you changed.", ""]
    for number, comment in enumerate(comments, start=1):
        lines.append(f"{number}. {comment.path}, line {comment.line} ({_SIDES.get(comment.side, comment.side)}), "
                     f"from {comment.author}:")
        if comment.quote is not None:
            lines += _indented(comment.quote, "|")
        lines += _indented(comment.body, ">")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
