"""What request data must look like before it may reach a handler (and PostgreSQL behind it).

PostgreSQL refuses a NUL character in text and integers wider than bigint; asyncpg then raises deep
inside a query and the client would see a 500. These checks run on the decoded request data instead,
so every field of every shape is covered without a constraint on each one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

__all__ = [
    "BIGINT_MAX",
    "BIGINT_MIN",
    "MAX_JSON_DEPTH",
    "InputProblem",
    "decode_json",
    "json_problem",
    "pairs_problem",
    "text_problem",
]

MAX_JSON_DEPTH = 64
BIGINT_MAX = 2**63 - 1
BIGINT_MIN = -(2**63)


class InputProblem(ValueError):
    """Request data the server refuses; the message names the field and says what is wrong."""


def text_problem(value: str) -> str | None:
    """Why `value` cannot be stored as text, or None when it can."""
    if "\x00" in value:
        return "contains a NUL character (U+0000), which cannot be stored: remove it"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode text (it holds a lone surrogate such as \\ud800)"
    return None


def _integer_problem(value: int) -> str | None:
    if BIGINT_MIN <= value <= BIGINT_MAX:
        return None
    return f"integer out of range: it must lie between {BIGINT_MIN} and {BIGINT_MAX}"


def _child_path(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def json_problem(document: Any) -> str | None:
    """The first problem in a decoded JSON document as "field: what is wrong", or None when there is none."""
    stack: list[tuple[Any, str, int]] = [(document, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth >= MAX_JSON_DEPTH:
                # Named by its top-level field: the full path would be MAX_JSON_DEPTH steps long.
                top = path.split(".", 1)[0].split("[", 1)[0]
                return f"{top or 'body'}: nested deeper than {MAX_JSON_DEPTH} levels"
            if isinstance(value, dict):
                for key, item in value.items():
                    child = _child_path(path, key)
                    if problem := text_problem(key):
                        return f"{child}: the field name {problem}"
                    stack.append((item, child, depth + 1))
            else:
                stack.extend((item, _child_path(path, index), depth + 1) for index, item in enumerate(value))
            continue
        problem = None
        if isinstance(value, str):
            problem = text_problem(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            problem = _integer_problem(value)
        if problem:
            return f"{path or 'body'}: {problem}"
    return None


def pairs_problem(pairs: Iterable[tuple[str, Any]]) -> str | None:
    """The first problem in query or form fields as "name: what is wrong", or None."""
    for name, value in pairs:
        if problem := text_problem(name):
            return f"a field name {problem}"
        if isinstance(value, str) and (problem := text_problem(value)):
            return f"{name}: {problem}"
    return None


def decode_json(body: bytes) -> Any:
    """The body as plain JSON values; raises InputProblem when it is not JSON or is nested too deeply."""
    try:
        return msgspec.json.decode(body)
    except RecursionError:
        # msgspec gives up near Python's recursion limit, long after MAX_JSON_DEPTH.
        raise InputProblem(f"body: nested deeper than {MAX_JSON_DEPTH} levels") from None
    except msgspec.DecodeError as exc:
        raise InputProblem(f"the body is not valid JSON: {exc}") from None
