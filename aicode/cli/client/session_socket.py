"""A live session's WebSocket (`/ws/sessions/{id}`) for the client: events in, prompts and requests out.

A thread reads the connection into a queue, so the terminal can wait for a prompt meanwhile. A
connection that drops is opened again after the last stored event received: stored events come
once each, in seq order; live-only ones (no seq) missed during a drop are gone, as they are for
every viewer.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.sync.client import ClientConnection, connect

from aicode import __version__
from aicode.cli.client.errors import ClientError, NotSignedIn, ServerUnreachable
from aicode.cli.client.http import ApiClient, unreachable
from aicode.tasks.models import TERMINAL_STATUSES

__all__ = ["SessionSocket", "socket_url"]

_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 3.0, 5.0)
# How long the server may stay unreachable before the conversation gives up.
_GIVE_UP_S = 60.0
_OPEN_TIMEOUT_S = 30.0
# A message holds one event; a tool's output is capped well below this.
_MAX_MESSAGE = 64 * 2**20


def socket_url(server: str, task_id: str, after: int) -> str:
    """The session's WebSocket on `server` (http → ws, https → wss), replaying stored events after `after`."""
    parts = urlsplit(server)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, f"{parts.path.rstrip('/')}/ws/sessions/{task_id}", f"after={after}", ""))


@dataclass(frozen=True, slots=True, eq=False)
class _Closed:
    """Put in the queue once the connection it was read from ended."""

    connection: ClientConnection
    reason: str


class SessionSocket:
    """One session's conversation channel. `ended` turns true once the session has ended and every stored
    event was received (`final_task` then holds the task as it was)."""

    def __init__(self, api: ApiClient, task_id: str, after: int, *,
                 on_reconnect: Callable[[str], None] | None = None) -> None:
        self._api = api
        self._task_id = task_id
        self.last_seq = after
        self.ended = False
        self.final_task: dict[str, Any] | None = None
        self._on_reconnect = on_reconnect or (lambda _: None)
        self._inbox: queue.Queue[dict[str, Any] | _Closed] = queue.Queue()
        self._connection: ClientConnection | None = None
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> SessionSocket:
        self._open()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._stack.close()
        self._connection = None

    def reopen(self) -> None:
        """Connect again after the session ended and was started again (a prompt sent over HTTP)."""
        self.close()
        self.ended = False
        self.final_task = None
        self._inbox = queue.Queue()
        self._open()

    def send(self, message: dict[str, Any]) -> None:
        """Send `message` ({type: prompt, text} | {type: interrupt} | {type: terminate}); once more after a drop."""
        for attempt in range(2):
            try:
                if self._connection is None:
                    raise ConnectionError("not connected")
                self._connection.send(json.dumps(message))
                return
            except (ConnectionClosed, ConnectionError):
                if attempt:
                    raise
                self._reconnect("the connection was closed")

    def receive(self, timeout: float) -> dict[str, Any] | None:
        """The next event (stored ones once each, in seq order; an `error` answer to something sent), or None
        when none came within `timeout` or the session has ended (see `ended`)."""
        deadline = time.monotonic() + timeout
        while not self.ended:
            try:
                item = self._inbox.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return None
            if isinstance(item, _Closed):
                if item.connection is self._connection:  # else one left behind already (a failed send)
                    self._after_close(item.reason)
                continue
            seq = item.get("seq")
            if isinstance(seq, int):
                if seq <= self.last_seq:
                    continue  # replayed after a reconnect: shown already
                self.last_seq = seq
            elif "type" not in item and "detail" in item:
                # The server refused the stream (no such session, not yours to see): it closes next.
                raise ClientError(str(item["detail"]))
            return item
        return None

    def _open(self) -> None:
        url = socket_url(self._api.server, self._task_id, self.last_seq)
        stack = contextlib.ExitStack()
        try:
            connection = stack.enter_context(connect(
                url, additional_headers=self._api.auth_headers(), user_agent_header=f"aicode-cli/{__version__}",
                open_timeout=_OPEN_TIMEOUT_S, max_size=_MAX_MESSAGE))
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status == 401:
                raise NotSignedIn("not signed in or token revoked: run aicode login") from None
            raise ClientError(f"the server refused the session's WebSocket ({status})") from None
        except (OSError, TimeoutError, WebSocketException) as exc:
            raise unreachable(self._api.server, exc) from None
        self._stack = stack
        self._connection = connection
        threading.Thread(target=self._read, args=(connection, self._inbox), name="session-socket",
                         daemon=True).start()

    @staticmethod
    def _read(connection: ClientConnection, inbox: queue.Queue[dict[str, Any] | _Closed]) -> None:
        reason = "the server closed the connection"
        try:
            for raw in connection:
                # Anything that is not a JSON object is no event of ours: skipped.
                with contextlib.suppress(ValueError):
                    if isinstance(message := json.loads(raw), dict):
                        inbox.put(message)
        except (ConnectionClosed, OSError) as exc:
            reason = str(exc) or type(exc).__name__
        inbox.put(_Closed(connection, reason))

    def _after_close(self, reason: str) -> None:
        """The server closes once the session has ended; any other close is a drop: connect again."""
        if self._settled():
            self.ended = True
            self.close()
            return
        self._reconnect(reason)

    def _settled(self) -> bool:
        try:
            task = self._api.get(f"/api/tasks/{self._task_id}")
        except ServerUnreachable:
            return False
        self.final_task = task
        return task["status"] in TERMINAL_STATUSES and task["last_seq"] <= self.last_seq

    def _reconnect(self, reason: str) -> None:
        self.close()
        self._on_reconnect(f"connection lost ({reason}); resuming after event {self.last_seq}")
        started, failures = time.monotonic(), 0
        while True:
            try:
                self._open()
                return
            except ServerUnreachable:
                if time.monotonic() - started > _GIVE_UP_S:
                    raise
                time.sleep(_BACKOFF_S[min(failures, len(_BACKOFF_S) - 1)])
                failures += 1
