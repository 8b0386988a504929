"""Terminal output: styled on a terminal (rich), plain lines in a pipe, JSON with --json."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TextIO

from rich import box
from rich.console import Console, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

__all__ = ["Output", "diffstat_lines"]


class Output:
    """Where a command writes: stdout (results) and stderr (progress, errors), both through rich."""

    def __init__(self, *, json_mode: bool = False, color: bool = True, stdout: TextIO | None = None,
                 stderr: TextIO | None = None) -> None:
        self.json_mode = json_mode
        stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
        # NO_COLOR (https://no-color.org) and --no-color both mean no styles at all.
        styled = color and "NO_COLOR" not in os.environ
        options: dict[str, Any] = {"highlight": False, "markup": False, "emoji": False, "soft_wrap": True}
        if not styled:
            options["color_system"] = None
        self.console = Console(file=stdout, **options)
        self.errors = Console(file=stderr, **options)

    @property
    def is_terminal(self) -> bool:
        return self.console.is_terminal and not self.console.is_dumb_terminal

    @property
    def styled(self) -> bool:
        return self.is_terminal and self.console.color_system is not None

    def line(self, text: str | Text = "", style: str | None = None) -> None:
        self.console.print(Text(text, style=style or "") if isinstance(text, str) else text)

    def note(self, text: str, style: str = "dim") -> None:
        """Progress for a person (stderr), kept out of the results on stdout."""
        self.errors.print(Text(text, style=style))

    def json(self, value: Any, *, compact: bool = False) -> None:
        text = json.dumps(value, separators=(",", ":")) if compact else json.dumps(value, indent=2)
        self.console.file.write(text + "\n")
        self.console.file.flush()

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[str]],
              styles: Sequence[str | None] | None = None) -> None:
        """A table with a box on a terminal; aligned columns separated by two spaces in a pipe."""
        if not self.is_terminal:
            widths = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(headers)]
            for row in [list(headers), *rows]:
                self.console.file.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() + "\n")
            self.console.file.flush()
            return
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
        # One line per row: every column but the last keeps its width, the last gets what is left
        # (3 columns between two) and ends with an ellipsis if that is too little.
        widths = [max([len(header)] + [len(row[index]) for row in rows]) for index, header in enumerate(headers[:-1])]
        room = max(self.console.width - sum(widths) - 3 * len(widths), 10)
        for index, header in enumerate(headers):
            last = index == len(headers) - 1
            table.add_column(header, style=(styles[index] if styles else None) or "", no_wrap=True,
                             overflow="ellipsis", max_width=room if last else None)
        for row in rows:
            table.add_row(*row)
        self.console.print(table, soft_wrap=False)

    @contextmanager
    def live(self, render: Callable[[], RenderableType]) -> Iterator[Callable[[], None]]:
        """A status line kept at the bottom of a terminal while lines print above it; nothing off a
        terminal. Yields a function that redraws it at once."""
        if not self.is_terminal or self.json_mode:
            yield lambda: None
            return

        class _Status:
            def __rich__(self) -> RenderableType:
                return render()

        with Live(_Status(), console=self.console, refresh_per_second=4, transient=True) as live:
            yield live.refresh


def diffstat_lines(files: Sequence[dict[str, Any]], width: int = 40) -> list[Text]:
    """` path | 12 ++++---` per file and a totals line, from the /files answer."""
    if not files:
        return []
    name_width = max(len(f["path"]) for f in files)
    most = max(f["additions"] + f["deletions"] for f in files) or 1
    count_width = len(str(most))
    lines = []
    for f in files:
        changed = f["additions"] + f["deletions"]
        scale = min(1.0, width / most)
        plus = round(f["additions"] * scale) or (1 if f["additions"] else 0)
        minus = round(f["deletions"] * scale) or (1 if f["deletions"] else 0)
        line = Text(f" {f['path'].ljust(name_width)} | {str(changed).rjust(count_width)} ")
        line.append("+" * plus, style="green")
        line.append("-" * minus, style="red")
        lines.append(line)
    added, deleted = sum(f["additions"] for f in files), sum(f["deletions"] for f in files)
    lines.append(Text(f" {len(files)} file{'' if len(files) == 1 else 's'} changed, "
                      f"{added} insertion{'' if added == 1 else 's'}(+), {deleted} deletion{'' if deleted == 1 else 's'}(-)"))
    return lines
