"""An identity provider's signing keys (its JWKS), cached and refetched when a token names a new key."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import structlog
from jwt import PyJWK
from jwt.exceptions import PyJWTError

from aicode.auth.sso.provider_http import PROVIDER_TIMEOUT_S, ProviderError, get_json

__all__ = ["JwksCache", "SigningKeyUnknown"]

log = structlog.get_logger(__name__)


class SigningKeyUnknown(LookupError):
    """No key with that id is published (or the key set cannot be fetched right now)."""


class JwksCache:
    """The keys at `url`, by `kid`: fetched on first use, again once `max_age_s` old, and again when a
    token names a key not seen yet — at most once per `refetch_interval_s`, so a flood of tokens with
    made-up key ids cannot make this server hammer the identity provider."""

    def __init__(self, url: str, *, max_age_s: float = 3600.0, refetch_interval_s: float = 60.0,
                 retry_after_failure_s: float = 10.0, timeout_s: float = PROVIDER_TIMEOUT_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self.fetches = 0  # fetch attempts so far (for tests and the curious)
        self._max_age_s = max_age_s
        self._refetch_interval_s = refetch_interval_s
        self._retry_after_failure_s = retry_after_failure_s
        self._timeout_s = timeout_s
        self._clock = clock
        self._keys: dict[str | None, PyJWK] = {}
        self._fetched_at: float | None = None
        self._failed_at = float("-inf")
        self._forced_at = float("-inf")
        self._lock = asyncio.Lock()

    async def key(self, kid: str | None) -> PyJWK:
        """The published key named `kid` (a token without a `kid` may use the only key of a one-key set)."""
        if self._lock.locked():
            async with self._lock:
                pass  # a fetch is under way and may bring the very key wanted: wait for it
        generation = self.fetches
        if self._expired() and not self._backing_off():
            await self._refresh(generation, forced=False)
        found = self._lookup(kid)
        if found is None and self._may_force():
            await self._refresh(self.fetches, forced=True)
            found = self._lookup(kid)
        if found is None:
            raise SigningKeyUnknown(f"token signed with an unknown key {kid!r} (not published at {self.url})"
                                    if self._keys else
                                    f"the signing keys at {self.url} could not be fetched; try again shortly")
        return found

    def _expired(self) -> bool:
        return self._fetched_at is None or self._clock() - self._fetched_at >= self._max_age_s

    def _backing_off(self) -> bool:
        return self._clock() - self._failed_at < self._retry_after_failure_s

    def _may_force(self) -> bool:
        now = self._clock()
        return now - self._forced_at >= self._refetch_interval_s and not self._backing_off()

    def _lookup(self, kid: str | None) -> PyJWK | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    async def _refresh(self, generation: int, *, forced: bool) -> None:
        async with self._lock:
            if self.fetches != generation:
                return  # another request refreshed while this one waited
            self.fetches += 1
            if forced:
                self._forced_at = self._clock()
            try:
                body = await get_json(self.url, timeout_s=self._timeout_s)
            except ProviderError as exc:
                # Keys fetched before stay in use: an identity provider's short outage should not
                # sign everyone out.
                self._failed_at = self._clock()
                log.warning("sso.jwks_fetch_failed", url=self.url, reason=exc.detail, cached_keys=len(self._keys))
                return
            self._keys = _parse_keys(body)
            self._fetched_at = self._clock()
            log.info("sso.jwks_fetched", url=self.url, keys=len(self._keys), forced=forced)


def _parse_keys(body: dict[str, Any]) -> dict[str | None, PyJWK]:
    """The usable signature keys of a JWKS document; keys of other uses or unknown types are skipped."""
    keys: dict[str | None, PyJWK] = {}
    for entry in body.get("keys") or []:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig" or entry.get("kty") not in ("RSA", "EC"):
            continue
        try:
            keys[entry.get("kid")] = PyJWK(entry)
        except PyJWTError:
            continue
    return keys
