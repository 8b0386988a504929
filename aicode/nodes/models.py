"""A node as the database knows it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["NodeRecord"]


@dataclass(frozen=True, slots=True)
class NodeRecord:
    name: str
    version: str
    capacity: int
    running: int
    draining: bool
    started_at: datetime
    heartbeat_at: datetime
    lease_until: datetime
    alive: bool  # its lease has not run out
