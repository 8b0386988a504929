"""Ctrl-C that lands between two events, never inside the printing of one."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["InterruptGate"]


class InterruptGate:
    """While installed, Ctrl-C raises KeyboardInterrupt at once when the gate is open (a blocking wait
    for the next event), and only when it opens again if it came while closed (an event being printed
    and recorded). So after Ctrl-C, "the last event shown" is exact: resuming repeats and skips nothing.
    """

    def __init__(self) -> None:
        self._open = True
        self._pending = False

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        if self._open:
            raise KeyboardInterrupt
        self._pending = True

    @contextmanager
    def installed(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield  # signal handlers belong to the main thread; elsewhere Ctrl-C is not ours anyway
            return
        previous = signal.signal(signal.SIGINT, self._on_sigint)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    @contextmanager
    def closed(self) -> Iterator[None]:
        self._open = False
        try:
            yield
        finally:
            self._open = True
        if self._pending:
            self._pending = False
            raise KeyboardInterrupt
