"""How a task's events read in a terminal: one short line per thing that happened, and the status area
under them (state, time, tokens, cost, and the text the agent is typing)."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text

from aicode.money import usd
from aicode.tasks.models import TaskStatus

__all__ = ["EventView", "format_cost", "format_duration", "format_tokens"]

# The argument that says what a tool call does, by the name tools commonly give it.
_KEY_ARGUMENTS = ("file_path", "notebook_path", "path", "command", "pattern", "url", "query", "description",
                  "prompt")
_MAX_LINE = 120
_STATUS_MARKS: dict[str, tuple[str, str]] = {TaskStatus.QUEUED: ("●", "dim"), TaskStatus.RUNNING: ("●", "cyan"),
                 TaskStatus.SUCCEEDED: ("✓", "bold green"), TaskStatus.FAILED: ("✗", "bold red"),
                 TaskStatus.CANCELLED: ("■", "yellow"), TaskStatus.INTERRUPTED: ("⚠", "yellow")}
_SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
# The status area shows the end of the text being typed: this many lines of it at most.
_TYPING_LINES = 4


def _short(text: str, limit: int = _MAX_LINE) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def format_tokens(count: int) -> str:
    return f"{count / 1000:.1f}k" if count >= 10_000 else f"{count:,}"


def format_cost(cost: float | None) -> str:
    """As the browser shows cost (aicode.money.usd): "$0.00", "$0.0123", "$1,234.50"."""
    return usd(cost)


def format_duration(seconds: float) -> str:
    if seconds < 10:
        return f"{max(seconds, 0):.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _size(text: str) -> str:
    size = len(text.encode())
    return f"{size} B" if size < 1024 else f"{size / 1024:.1f} KiB"


class _Meter:
    """Tokens and cost across turns: `usage` events are running totals within one turn."""

    def __init__(self) -> None:
        self.done_in = self.done_out = 0
        self.turn_in = self.turn_out = 0
        self.cost = 0.0
        self._turn_cost = 0.0

    def usage(self, data: dict[str, Any]) -> None:
        self.turn_in = sum(int(data.get(k) or 0) for k in ("input_tokens", "cache_read_tokens", "cache_write_tokens"))
        self.turn_out = int(data.get("output_tokens") or 0)
        if data.get("cost_usd") is not None:
            self._turn_cost = float(data["cost_usd"])

    def turn_done(self) -> None:
        self.done_in, self.done_out = self.done_in + self.turn_in, self.done_out + self.turn_out
        self.cost += self._turn_cost
        self.turn_in = self.turn_out = 0
        self._turn_cost = 0.0

    def text(self) -> str:
        spent = f"{format_tokens(self.done_in + self.turn_in)} in / {format_tokens(self.done_out + self.turn_out)} out"
        return f"{spent} tokens · {format_cost(self.cost + self._turn_cost)}"


class EventView:
    """Turns events into lines, and keeps what the status line shows (state, elapsed time, tokens, cost)."""

    def __init__(self, started_at: str | None = None) -> None:
        self.meter = _Meter()
        self.status: str = TaskStatus.QUEUED
        self._cwd: str | None = None
        self._since = _parse_time(started_at) if started_at else None
        self._clock = time.monotonic()
        # Text as it is typed (`message.delta`), by message id, until the whole message is printed.
        self._typing: dict[str, str] = {}

    def lines(self, event: dict[str, Any]) -> list[Text]:
        kind, data = event.get("type", ""), event.get("data") or {}
        handler = getattr(self, "_on_" + kind.replace(".", "_"), None)
        if self._since is None and event.get("ts"):
            self._since = _parse_time(event["ts"])
        return handler(data) if handler else [Text(f"· {kind}: {json.dumps(data)[:_MAX_LINE]}", style="dim")]

    def status_line(self) -> Text:
        frame = _SPINNER[int(time.monotonic() * 8) % len(_SPINNER)]
        elapsed = (dt.datetime.now(dt.timezone.utc) - self._since).total_seconds() if self._since else \
            time.monotonic() - self._clock
        text = Text(f"{frame} ", style="cyan")
        text.append(self.status, style="bold")
        text.append(f" · {format_duration(elapsed)} · {self.meter.text()}", style="dim")
        return text

    def typing(self) -> str:
        """The end of the text the agent is typing now (empty when it types nothing)."""
        text = "".join(self._typing.values()).rstrip()
        return "\n".join(text.splitlines()[-_TYPING_LINES:])

    def status_area(self) -> RenderableType:
        """What stays under the printed lines on a terminal: the text being typed, then the status line.
        The text is printed once, as a line, when its whole message comes; until then it lives here."""
        typing = self.typing()
        if not typing:
            return self.status_line()
        return Group(Text(typing, style="italic"), self.status_line())

    def _on_task_status(self, data: dict[str, Any]) -> list[Text]:
        self.status = str(data.get("status"))
        mark, style = _STATUS_MARKS.get(self.status, ("●", ""))
        text = Text(f"{mark} {self.status}", style=style)
        if data.get("error"):
            text.append(f": {data['error']}")
        return [text]

    def _on_message_delta(self, data: dict[str, Any]) -> list[Text]:
        # Live text as it is typed: shown in the status area; the whole message follows and is printed then.
        key = str(data.get("message_id") or "")
        self._typing[key] = self._typing.get(key, "") + str(data.get("text") or "")
        return []

    def _on_session_idle(self, data: dict[str, Any]) -> list[Text]:
        return []  # a live session waits for its next prompt: `aicode chat` asks for it

    def _on_agent_started(self, data: dict[str, Any]) -> list[Text]:
        self._cwd = str(data["cwd"]).rstrip("/") + "/" if data.get("cwd") else None
        version = f" {data['agent_version']}" if data.get("agent_version") else ""
        session = f" · session {str(data.get('session_id'))[:8]}" if data.get("session_id") else ""
        return [Text(f"● agent started: {data.get('model') or 'claude'}{version}{session}", style="dim")]

    def _on_message(self, data: dict[str, Any]) -> list[Text]:
        text = str(data.get("text") or "")
        if data.get("kind") == "thinking":
            return [Text(f"∴ {_short(text)}", style="dim italic")]
        self._typing.pop(str(data.get("message_id") or ""), None)
        return [Text(text.rstrip("\n"))]

    def _on_tool_call(self, data: dict[str, Any]) -> list[Text]:
        name = str(data.get("name") or "tool")
        arguments = given if isinstance(given := data.get("input"), dict) else {}
        key = next((str(arguments[k]) for k in _KEY_ARGUMENTS if isinstance(arguments.get(k), (str, int))), "")
        if self._cwd and key.startswith(self._cwd):
            key = key[len(self._cwd):]  # paths as the repository knows them, not the container
        line = Text("→ ", style="cyan")
        line.append(name, style="bold")
        if key:
            line.append(" " + _short(key))
        return [line]

    def _on_tool_result(self, data: dict[str, Any]) -> list[Text]:
        ok = data.get("ok") is not False
        output = str(data.get("output") or "")
        line = Text("  ✓" if ok else "  ✗", style="green" if ok else "red")
        rows = output.strip().splitlines()
        if rows:
            line.append(" " + _short(rows[0], 100), style="dim" if ok else "")
        if len(rows) > 1:
            line.append(f" … (+{len(rows) - 1} lines, {_size(output)})", style="dim")
        if data.get("truncated"):
            line.append(" [truncated]", style="dim")
        return [line]

    def _on_usage(self, data: dict[str, Any]) -> list[Text]:
        self.meter.usage(data)
        return []

    def _on_notice(self, data: dict[str, Any]) -> list[Text]:
        message = str(data.get("message") or "")
        if data.get("code") == "follow_up":
            return [Text(f"» {_short(message)}", style="bold")]
        level = data.get("level")
        style = {"error": "red", "warning": "yellow"}.get(str(level), "dim")
        return [Text(f"{'!' if level in ('error', 'warning') else '·'} {_short(message, 400)}", style=style)]

    def _on_turn_completed(self, data: dict[str, Any]) -> list[Text]:
        self.meter.turn_done()
        self._typing.clear()  # text no whole message took up was cut off (an interrupt): it is gone
        parts = [f"{data['num_turns']} turn{'' if data['num_turns'] == 1 else 's'}"] if data.get("num_turns") else []
        if data.get("duration_ms") is not None:
            parts.append(f"{data['duration_ms'] / 1000:.1f}s")
        if data.get("cost_usd") is not None:
            parts.append(format_cost(float(data["cost_usd"])))
        return [Text(f"· agent done{': ' + ' · '.join(parts) if parts else ''}", style="dim")]

    def _on_git_commit(self, data: dict[str, Any]) -> list[Text]:
        line = Text("⎇ ", style="magenta")
        line.append(f"commit {str(data.get('commit'))[:12]} on {data.get('branch')}: ")
        line.append(f"{data.get('files_changed')} file{'' if data.get('files_changed') == 1 else 's'}, ")
        line.append(f"+{data.get('additions')}", style="green")
        line.append(" ")
        line.append(f"-{data.get('deletions')}", style="red")
        if data.get("partial"):
            line.append(" (partial)", style="yellow")
        return [line]


def _parse_time(value: str) -> dt.datetime | None:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)
