"""Sign-in throttling: failed attempts per account and per client address, counted in a sliding window.

Past the limit, further attempts are refused with the seconds to wait, before any password is
hashed: a burst of guesses costs the server almost nothing and leaves everyone else's sign-in fast.
A success clears the account's count. Kept in memory (per process): a restart forgives.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable

__all__ = ["LoginThrottle"]

_MAX_KEYS = 100_000  # bounded memory whatever a flood of usernames or addresses does


class _Window:
    def __init__(self, limit: int, window_s: float) -> None:
        self._limit = limit
        self._window_s = window_s
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def wait_s(self, key: str, now: float) -> float:
        times = self._failures.get(key)
        if times is None:
            return 0.0
        while times and times[0] <= now - self._window_s:
            times.popleft()
        if not times:
            del self._failures[key]
            return 0.0
        return times[0] + self._window_s - now if len(times) >= self._limit else 0.0

    def add(self, key: str, now: float) -> None:
        self._failures.setdefault(key, deque()).append(now)
        self._failures.move_to_end(key)
        while len(self._failures) > _MAX_KEYS:
            self._failures.popitem(last=False)

    def clear(self, key: str) -> None:
        self._failures.pop(key, None)


class LoginThrottle:
    def __init__(self, *, per_account: int = 10, per_address: int = 30, window_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._accounts = _Window(per_account, window_s)
        self._addresses = _Window(per_address, window_s)
        self._clock = clock

    def wait_s(self, username: str, address: str | None) -> int:
        """Seconds before another attempt may be made for this account from this address (0: now)."""
        now = self._clock()
        waits = [self._accounts.wait_s(username.lower(), now)]
        if address:
            waits.append(self._addresses.wait_s(address, now))
        longest = max(waits)
        return int(longest) + 1 if longest > 0 else 0

    def failed(self, username: str, address: str | None) -> None:
        now = self._clock()
        self._accounts.add(username.lower(), now)
        if address:
            self._addresses.add(address, now)

    def succeeded(self, username: str) -> None:
        self._accounts.clear(username.lower())
