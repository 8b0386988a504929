"""What every agent's output parser shares: one JSON object per line, read defensively, dispatched by its
`type`; a line that is not JSON, or not understood, becomes a `notice` instead of being dropped."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, cast

from aicode.agents.events import AgentEvent, cap_utf8, notice
from aicode.agents.lines import Line

__all__ = ["NOTICE_MAX_BYTES", "TOOL_OUTPUT_MAX_BYTES", "Handler", "JsonLinesParser", "as_dict", "as_float",
           "as_int", "as_list", "as_str", "capped_raw", "count", "parse_object", "readable_api_error"]

TOOL_OUTPUT_MAX_BYTES = 64 * 1024
NOTICE_MAX_BYTES = 8 * 1024
_RAW_MAX_BYTES = 8 * 1024
# Escapes that json.loads turns into characters PostgreSQL's jsonb refuses (NUL, lone surrogates).
_UNSTORABLE_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")

Handler = Callable[[dict[str, Any]], list[AgentEvent]]


class JsonLinesParser:
    """Turns lines into events through `_handlers` (by the object's `type`); never raises on odd output."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def feed(self, line: Line) -> list[AgentEvent]:
        """The events for one line of the agent's stdout."""
        if line.truncated:
            # A cut JSON line cannot be parsed; say so instead of reporting a bogus parse error.
            start = line.text[:200]
            return [notice("warning", "line_truncated", f"an over-long output line was cut and skipped: {start}…")]
        text = line.text.strip()
        if not text:
            return []
        obj = parse_object(text)
        if obj is None:
            return [notice("info", "agent_output", cap_utf8(text, NOTICE_MAX_BYTES)[0])]
        kind = obj.get("type")
        handler = self._handlers.get(kind, on_unknown) if isinstance(kind, str) else on_unknown
        try:
            return handler(obj)
        except Exception as exc:  # noqa: BLE001 - agent output is untrusted: one odd line must not end the stream
            message = f"could not interpret a {obj.get('type')!r} line ({type(exc).__name__}: {exc})"
            return [notice("warning", "unparsed_event", message, raw=capped_raw(obj))]


def on_unknown(obj: dict[str, Any]) -> list[AgentEvent]:
    """A line of a type this parser does not know: kept, as an informational notice."""
    message = f"unrecognised agent output of type {obj.get('type')!r}"
    return [notice("info", "unknown_event", message, raw=capped_raw(obj))]


def parse_object(text: str) -> dict[str, Any] | None:
    """The JSON object on a line, made storable as jsonb; None when the line is not one."""
    if not text.startswith("{"):
        return None
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    if _UNSTORABLE_ESCAPE.search(text):
        return cast(dict[str, Any], _storable(obj))  # _storable keeps a dict a dict
    return obj


def _storable(value: Any) -> Any:
    """`value` with NUL and lone surrogates replaced, so events can be stored as PostgreSQL jsonb."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd").encode("utf-8", errors="replace").decode("utf-8")
    if isinstance(value, list):
        return [_storable(item) for item in value]
    if isinstance(value, dict):
        return {_storable(key): _storable(item) for key, item in value.items()}
    return value


def capped_raw(obj: dict[str, Any]) -> Any:
    """`obj` to keep in a notice: itself, or its JSON text cut short when it is too big to keep whole."""
    text = json.dumps(obj, ensure_ascii=False)
    capped, cut = cap_utf8(text, _RAW_MAX_BYTES)
    return capped if cut else obj


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def as_float(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def count(mapping: dict[str, Any], key: str) -> int:
    """A token count from a usage object: missing, odd or negative values count as 0."""
    value = as_int(mapping.get(key))
    return value if value is not None and value > 0 else 0


_EMBEDDED_JSON = re.compile(r"\{.*\}", re.DOTALL)


def readable_api_error(message: str) -> str:
    """The provider's own words from an error message that quotes the API's JSON error body (Codex and the
    Gemini CLI pass the body on as it came: `{"error": {"message": …}}`); other messages as they are."""
    found = _EMBEDDED_JSON.search(message)
    if found is None:
        return message
    try:
        body = json.loads(found.group(0))
    except ValueError:
        return message
    error = as_dict(as_dict(body).get("error"))
    text = as_str(error.get("message"))
    if text is None or not text.strip():
        return message
    code = as_int(error.get("code"))
    return f"the model API answered {code}: {text}" if code else f"the model API refused the call: {text}"
