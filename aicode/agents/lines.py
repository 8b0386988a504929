"""Splitting an agent's output stream into lines, with memory bounded however long a line is."""

from __future__ import annotations

import codecs
from dataclasses import dataclass

__all__ = ["DEFAULT_MAX_LINE_BYTES", "Line", "LineSplitter"]

# The Claude Agent SDK caps its stream-json lines at 1 MB too.
DEFAULT_MAX_LINE_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Line:
    """One line of output without its line ending; `truncated` means bytes past the cap were dropped."""

    text: str
    truncated: bool


class LineSplitter:
    """Incremental splitter: feed raw chunks, get back complete lines decoded as UTF-8."""

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be at least 1")
        self._max = max_line_bytes
        self._buffer = bytearray()
        # Set once the current line outgrew the buffer: the rest of it is dropped up to the next newline.
        self._overflowed = False

    @property
    def buffered_bytes(self) -> int:
        """Bytes held for the current, unfinished line (never more than max_line_bytes + 1)."""
        return len(self._buffer)

    def feed(self, chunk: bytes) -> list[Line]:
        """The lines completed by `chunk`; a trailing partial line is kept for the next call."""
        lines: list[Line] = []
        view = memoryview(chunk)
        start = 0
        while True:
            newline = chunk.find(b"\n", start)
            end = len(chunk) if newline < 0 else newline
            self._keep(view[start:end])
            if newline < 0:
                return lines
            lines.append(self._take())
            start = newline + 1

    def flush(self) -> list[Line]:
        """The last line if the stream ended without a newline (call once, at EOF)."""
        if not self._buffer and not self._overflowed:
            return []
        return [self._take()]

    def _keep(self, piece: memoryview) -> None:
        # One byte of slack so a line of exactly max bytes followed by "\r\n" is not reported as cut.
        room = self._max + 1 - len(self._buffer)
        if len(piece) > room:
            self._overflowed = True
            piece = piece[:room]
        if piece:
            self._buffer += piece

    def _take(self) -> Line:
        data = bytes(self._buffer)
        truncated = self._overflowed
        self._buffer.clear()
        self._overflowed = False
        if data.endswith(b"\r") and not truncated:
            data = data[:-1]
        if len(data) > self._max:
            data, truncated = data[: self._max], True
        if truncated:
            # The cut may fall inside a multi-byte character: decode without its incomplete tail.
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            return Line(decoder.decode(data, final=False), True)
        return Line(data.decode("utf-8", errors="replace"), False)
