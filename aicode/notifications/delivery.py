"""Sends queued notifications: a background loop claims due deliveries, posts each (5 s timeout), and on
anything but a 2xx tries again later, waiting longer each time, until it gives up."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import structlog

from aicode import __version__
from aicode.crypto import SecretBox
from aicode.notifications.messages import sent_now
from aicode.notifications.repo import ClaimedDelivery, NotificationRepo
from aicode.notifications.schemas import TestDelivery

__all__ = ["BACKOFF_STEPS", "MAX_ATTEMPTS", "NotificationDelivery"]

log = structlog.get_logger(__name__)

SEND_TIMEOUT_S = 5.0
# Waits before each retry, in units of AICODE_NOTIFY_RETRY_BASE_S: with 5 s, 5 s, 30 s, 2 min, 10 min, 1 h.
BACKOFF_STEPS = (1, 6, 24, 120, 720)
MAX_ATTEMPTS = len(BACKOFF_STEPS) + 1
_BATCH = 20
_POLL_S = 5.0  # deliveries another node queued are found at the latest this much later
_LEASE_S = 60.0  # a claimed delivery whose node died is tried again this much later


class NotificationDelivery:
    def __init__(self, repo: NotificationRepo, box: SecretBox, *, retry_base_s: float) -> None:
        self._repo = repo
        self._box = box
        self._retry_base_s = retry_base_s
        self._wake = asyncio.Event()
        self._client = httpx.AsyncClient(timeout=SEND_TIMEOUT_S, follow_redirects=False,
                                         headers={"User-Agent": f"aicode/{__version__}"})

    def nudge(self) -> None:
        """Deliveries were queued: look now rather than at the next poll."""
        self._wake.set()

    async def close(self) -> None:
        await self._client.aclose()

    async def run(self) -> None:
        """Deliver what is due, then sleep until the next delivery is due (or a nudge); for the server's life."""
        while True:
            self._wake.clear()
            try:
                claimed = await self._repo.claim_due(_BATCH, _LEASE_S)
                await asyncio.gather(*(self._deliver(delivery) for delivery in claimed))
                if len(claimed) == _BATCH:
                    continue
                pause = await self._repo.seconds_to_next()
            except Exception as exc:  # the database away for a moment: try again at the next poll
                log.warning("notifications.delivery_round_failed", exc_info=exc)
                pause = _POLL_S
            pause = _POLL_S if pause is None else min(pause, _POLL_S)
            if pause > 0:
                try:
                    await asyncio.wait_for(self._wake.wait(), pause)
                except TimeoutError:
                    pass

    async def send(self, url: str, body: dict[str, Any]) -> TestDelivery:
        """Post `body` to `url` once: delivered on a 2xx; the error never quotes the URL (it may be secret)."""
        try:
            response = await self._client.post(url, json=sent_now(body))
        except httpx.TimeoutException:
            return TestDelivery(delivered=False, status_code=None,
                                error=f"no answer within {SEND_TIMEOUT_S:g} s")
        except httpx.HTTPError as exc:
            reason = str(exc).replace(url, "the webhook URL") or type(exc).__name__
            return TestDelivery(delivered=False, status_code=None, error=f"could not reach the receiver: {reason}")
        if response.is_success:
            return TestDelivery(delivered=True, status_code=response.status_code, error=None)
        return TestDelivery(delivered=False, status_code=response.status_code,
                            error=f"the receiver answered {response.status_code}")

    def retry_in(self, attempts: int) -> float | None:
        """Seconds before attempt `attempts + 1`, or None once `attempts` reached MAX_ATTEMPTS."""
        if attempts >= MAX_ATTEMPTS:
            return None
        return self._retry_base_s * BACKOFF_STEPS[attempts - 1]

    async def _deliver(self, delivery: ClaimedDelivery) -> None:
        try:
            url = self._box.open(delivery.url_enc)
        except ValueError as exc:  # the secret key changed: no attempt can succeed
            await self._repo.failed(delivery, None, str(exc), None)
            return
        result = await self.send(url, delivery.body)
        if result.delivered and result.status_code is not None:
            await self._repo.delivered(delivery, result.status_code)
            log.info("notifications.delivered", delivery_id=delivery.id, attempts=delivery.attempts)
            return
        retry_in = self.retry_in(delivery.attempts)
        await self._repo.failed(delivery, result.status_code, result.error or "failed", retry_in)
        log.warning("notifications.delivery_failed", delivery_id=delivery.id, attempts=delivery.attempts,
                    status=result.status_code, error=result.error, retry_in_s=retry_in)
