"""What the model gateway knows about a running turn, and the port it asks the rest of the server through.

A container never holds a model credential. Each turn gets a random capability token instead; the
gateway resolves it to a `TurnGrant` (whose credential it swaps in), asks whether a budget forbids
the call, and reports the usage it metered from the answer. `GatewayBackend` is that port: the
server implements it over the database, tests with an in-memory fake.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol
from uuid import UUID

__all__ = ["GatewayBackend", "ModelCredential", "ModelUsage", "TurnGrant"]


@dataclass(frozen=True, slots=True)
class ModelCredential:
    """A provider credential: `kind` is `api_key`, or `oauth_token` (Anthropic subscriptions)."""

    kind: str
    secret: str = field(repr=False)


@dataclass(slots=True)
class TurnGrant:
    """One running turn's right to call models, held by the gateway while the turn runs."""

    token_hash: bytes = field(repr=False)
    task_id: UUID
    user_id: UUID
    workspace_id: UUID
    # Per provider ("anthropic", "openai" or "gemini"): the credential the turn's requester runs with.
    credentials: dict[str, ModelCredential] = field(default_factory=dict, repr=False)
    # Host patterns the agent may reach through the CONNECT proxy (network policy `allowlist`).
    egress_allow: tuple[str, ...] = ()
    # Why the gateway refused a model call (a spent budget): the turn's error names it.
    refusal: str | None = None
    # What the turn's model calls cost so far, as metered by the gateway.
    spent_usd: float = 0.0


@dataclass(frozen=True, slots=True)
class ModelUsage:
    """What one model call used, read from its answer, and what it cost by the price table."""

    provider: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0


class GatewayBackend(Protocol):
    """How the gateway's listeners reach the rest of the server."""

    async def grant_for(self, token: str) -> TurnGrant | None:
        """The running turn a capability token belongs to; None for an unknown or ended one."""
        ...

    async def refusal_for(self, grant: TurnGrant) -> str | None:
        """Why a new model call must be refused (a spent budget, worded for the user), or None."""
        ...

    async def record_usage(self, grant: TurnGrant, usage: ModelUsage) -> None:
        """Store what a forwarded call used (called once per call, after its answer ended)."""
        ...

    def egress_refused(self, grant: TurnGrant | None, target: str, reason: str) -> None:
        """A CONNECT the proxy refused: for the log and the task's feed (never raises)."""
        ...
