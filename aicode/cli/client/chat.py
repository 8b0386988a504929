"""One terminal conversation with a live session: a prompt while the session waits, the turn as it
happens (the text as it is typed in the status area), the prompt again.

Ctrl-C during a turn interrupts it (its work is committed as partial, the session goes on); a second
Ctrl-C, or Ctrl-C or Ctrl-D at the prompt, ends the session the normal way.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any, TextIO

from aicode.cli.client.common import Context
from aicode.cli.client.event_view import EventView
from aicode.cli.client.interrupt import InterruptGate
from aicode.cli.client.session_socket import SessionSocket
from aicode.cli.client.watch import finish, print_event
from aicode.tasks.models import TERMINAL_STATUSES

__all__ = ["Conversation", "PromptReader", "turn_running"]

# Events only a running turn makes.
_ACTIVITY = frozenset({"message", "tool.call", "tool.result", "usage"})
_POLL_S = 0.25


def turn_running(events: list[dict[str, Any]], first_prompt: bool) -> bool:
    """Whether a session's latest events show a turn running or prompts waiting for one: each prompt (the
    first, then `follow_up` notices) opens a turn, `turn.completed` closes one, agent activity means one
    runs. The same reading as the browser's (static/session.js)."""
    pending = 0
    for event in events:
        kind, data = event.get("type"), event.get("data") or {}
        if event.get("seq") == 1:
            pending = 1 if first_prompt else 0
        if kind == "notice" and data.get("code") == "follow_up":
            pending += 1
        elif kind == "turn.completed":
            pending = max(0, pending - 1)
        elif kind in _ACTIVITY and pending == 0:
            pending = 1
        elif kind == "task.status" and data.get("status") in TERMINAL_STATUSES:
            pending = 0
    return pending > 0


class PromptReader:
    """Lines typed at a `›` prompt on a terminal (with line editing), or read from piped input."""

    def __init__(self, stdin: TextIO | None = None, stdout: TextIO | None = None) -> None:
        self._stdin = stdin or sys.stdin
        self._terminal = self._stdin.isatty() and (stdout or sys.stdout).isatty()
        if self._terminal:
            with contextlib.suppress(ImportError):
                import readline  # noqa: F401  (line editing and history for input())

    @property
    def interactive(self) -> bool:
        return self._terminal

    def read(self) -> str | None:
        """The next line; None at the end of the input (Ctrl-D)."""
        if self._terminal:
            try:
                return input("› ")
            except EOFError:
                return None
        line = self._stdin.readline()
        return line.rstrip("\n") if line else None


class Conversation:
    def __init__(self, ctx: Context, task: dict[str, Any], prompts: PromptReader, *, after: int,
                 busy: bool) -> None:
        self._ctx = ctx
        self._task = task
        self._prompts = prompts
        self._view = EventView(task.get("created_at"))
        self._view.status = task["status"]
        self._socket = SessionSocket(ctx.api, task["id"], after, on_reconnect=ctx.out.note)
        self._gate = InterruptGate()
        self._ended = task["status"] in TERMINAL_STATUSES
        self._busy = busy  # a turn runs, or prompts wait for one: no prompt is asked for
        self._unseen = 0  # prompts sent whose notice has not come back
        self._last_sent = ""
        self._interrupted = False
        self._ending = False

    def run(self) -> int:
        """Converse until the session ends; the exit code says how it ended (as `aicode run`'s)."""
        with self._gate.installed(), self._socket:
            while True:
                if self._busy or self._ending:
                    self._follow()
                    if self._ended:
                        break  # ended as asked, or on its own during a turn (failed, ended elsewhere)
                elif not self._ask():
                    break
        final = self._socket.final_task or self._ctx.api.get(f"/api/tasks/{self._task['id']}")
        return finish(self._ctx, final)

    def _ask(self) -> bool:
        """Read a prompt and send it; False when the input ended and so has the session."""
        try:
            self._drain()
            if self._busy:
                return True  # someone else's prompt came first: its turn runs now
            line = self._prompts.read()
            if line is not None and line.strip():
                self._drain()
        except KeyboardInterrupt:
            line = None  # Ctrl-C at the prompt: as Ctrl-D
        if line is None:
            if self._ended:
                return False
            self._end()
        elif line.strip():
            self._send(line.strip())
        return True

    def _send(self, text: str) -> None:
        if self._ended:
            # A session that ended (idle too long) starts again with this prompt, where it left off.
            self._ctx.out.note("the session had ended: starting it again with your prompt …")
            self._ctx.api.post(f"/api/tasks/{self._task['id']}/messages", {"prompt": text})
            self._ended = False
            self._socket.reopen()
        else:
            self._socket.send({"type": "prompt", "text": text})
        self._last_sent = "prompt"
        self._unseen += 1
        self._busy = True
        self._interrupted = False

    def _end(self) -> None:
        self._ending = True
        self._ctx.out.note("ending the session …")
        self._socket.send({"type": "terminate"})
        self._last_sent = "terminate"

    def _follow(self) -> None:
        """Show events until the session waits for a prompt, or has ended."""
        try:
            with self._ctx.out.live(self._view.status_area):
                while (self._busy or self._ending) and not self._ended:
                    event = self._socket.receive(_POLL_S)
                    if event is not None:
                        with self._gate.closed():
                            self._show(event)
                    elif self._socket.ended:
                        self._ended = True
        except KeyboardInterrupt:
            self._on_ctrl_c()

    def _drain(self) -> None:
        """Show what came while the prompt waited (another viewer's prompt, the session ending)."""
        while (event := self._socket.receive(0)) is not None:
            with self._gate.closed():
                self._show(event)
        self._ended = self._ended or self._socket.ended

    def _show(self, event: dict[str, Any]) -> None:
        kind, data = event.get("type"), event.get("data") or {}
        if kind == "error":
            self._refused(str(event.get("detail") or "the server refused it"))
            return
        print_event(self._ctx, self._view, event)
        if kind == "notice" and data.get("code") == "follow_up":
            self._unseen = max(0, self._unseen - 1)
            self._busy = True
        elif kind == "session.idle" and self._unseen == 0:
            self._busy = False  # an idle from before our prompt was taken says nothing
        elif kind == "task.status" and data.get("status") in TERMINAL_STATUSES:
            self._ended = True
            self._busy = False

    def _refused(self, detail: str) -> None:
        self._ctx.out.note(f"aicode: {detail}", style="red")
        if self._last_sent == "prompt" and self._unseen:
            self._unseen -= 1
            self._busy = self._unseen > 0  # that prompt never started a turn: ask for another
        self._last_sent = ""

    def _on_ctrl_c(self) -> None:
        if self._ending:
            self._ctx.out.note(f"stopped waiting: the session ends on the server. Its events: aicode logs "
                               f"{self._task['id']}", style="yellow")
            raise KeyboardInterrupt
        if self._interrupted or not self._busy:
            self._end()
            return
        self._interrupted = True
        self._ctx.out.note("interrupting the turn … (Ctrl-C again ends the session)", style="yellow")
        self._socket.send({"type": "interrupt"})
        self._last_sent = "interrupt"
