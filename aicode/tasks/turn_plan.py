"""What one turn runs with: whose credential, which network, what the agent's command and environment are.

The turn belongs to the user who asked for it (`turn_user_id`: the creator for the first turn, the
author of a follow-up after). No credential enters the container: the turn gets a capability
token for the model gateway, valid while the plan is open (`TurnPlanner.plan`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from uuid import UUID

from aicode.agents.events import TokenCount
from aicode.agents.registry import AgentDriver, UnknownAgent, driver_for
from aicode.agents.turn import AgentTurn, ModelAccess
from aicode.auth.repo import UserRepo
from aicode.credentials.providers import PROVIDER_LABELS
from aicode.credentials.service import CredentialService
from aicode.gateway.grants import GrantStore
from aicode.gateway.models import ModelCredential, TurnGrant
from aicode.gateway.runtime import GatewayRuntime, GatewayUnavailable
from aicode.tasks.models import TaskRecord
from aicode.workspaces.models import WorkspaceRecord

__all__ = ["AGENT_HOME", "PlannerConfig", "TurnFailure", "TurnPlan", "TurnPlanner", "after_git_sync",
           "git_sync_command"]

AGENT_HOME = "/home/agent"
COMMITTER = ("aicode", "aicode@aicode.invalid")

# Commits what the agent left in ITS OWN repository inside the container, so the next turn's `git
# status` starts clean, as it would after aicode's commit. It runs in the sandbox as the agent (the
# server never reads this repository) after the agent has exited, beside the server's own snapshot.
# Each git step is time-limited: a FIFO or a slow filter of the agent's making must not hold
# anything up. $1: the commit message.
_GIT_SYNC = """\
bounded() { if command -v timeout >/dev/null 2>&1; then timeout 30 "$@"; else "$@"; fi; }
bounded git add -A >/dev/null 2>&1 || exit 0
bounded git diff --cached --quiet >/dev/null 2>&1 || \
  bounded git -c core.hooksPath=/dev/null commit -q --no-verify -m "$1" >/dev/null 2>&1 || true
"""
# A turn that was killed never had that commit: before a follow-up, its leftovers get one.
_LEFTOVERS = "aicode: work left by an interrupted turn"


class TurnFailure(Exception):
    """The turn could not run (no checkout, no image, no credential): the message is the task's error."""


@dataclass(frozen=True, slots=True)
class PlannerConfig:
    agent_network: str
    default_network: str
    open_networks: tuple[str, ...] = ()
    agent_env: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(slots=True)
class TurnPlan:
    driver: AgentDriver  # the task's agent CLI: its command, and the parser of its output
    turn: AgentTurn
    argv: list[str]
    env: dict[str, str] = field(repr=False)
    network: str  # the container's Docker network mode
    author: tuple[str, str]
    grant: TurnGrant | None = None
    access: ModelAccess | None = None  # the agent's way to the gateway (a session builds later turns' argv with it)
    # On the agent network: the gateway address and ports, the only ones the container may reach.
    confine_to: tuple[str, tuple[int, ...]] | None = None


def commit_title(prompt: str) -> str:
    stripped = prompt.strip()
    return stripped.splitlines()[0][:72] if stripped else "aicode task"


def git_sync_command(message: str) -> list[str]:
    """The command that commits the agent's work in its own repository, inside the container."""
    return ["sh", "-c", _GIT_SYNC, "aicode-sync", message]


def after_git_sync(argv: list[str]) -> list[str]:
    """`argv`, run once leftovers of an earlier turn are committed in the agent's repository."""
    return ["sh", "-c", 'sh -c "$1" aicode-sync "$2" >/dev/null 2>&1; shift 2; exec "$@"', "aicode-turn",
            _GIT_SYNC, _LEFTOVERS, *argv]


class TurnPlanner:
    def __init__(self, config: PlannerConfig, credentials: CredentialService, grants: GrantStore,
                 gateway: GatewayRuntime, users: UserRepo) -> None:
        self._config = config
        self._credentials = credentials
        self._grants = grants
        self._gateway = gateway
        self._users = users

    async def author(self, user_id: UUID) -> tuple[str, str]:
        """The git author of a turn `user_id` asked for: their git identity (Settings), else their username."""
        user = await self._users.get(user_id)
        name = user.username if user is not None else "aicode"
        if user is None:
            return name, f"{name}@aicode.invalid"
        return user.git_name or name, user.git_email or f"{name}@aicode.invalid"

    async def credential(self, user_id: UUID, workspace_id: UUID, provider: str) -> ModelCredential | None:
        """The credential a turn asked for by `user_id` runs with (their own, else the workspace's team key)."""
        stored = await self._credentials.for_turn(user_id, workspace_id, provider)
        return None if stored is None else ModelCredential(*stored)

    def network(self, workspace: WorkspaceRecord) -> tuple[str, str]:
        """(policy, Docker network) for the workspace; TurnFailure for a network this server does not allow."""
        return self.network_for(workspace.network or self._config.default_network)

    async def confinement(self, policy: str) -> tuple[str, tuple[int, ...]] | None:
        """The gateway address and ports a container on `policy`'s network may reach (None: not confined)."""
        if policy not in ("gateway", "allowlist"):
            return None
        endpoint = await self._gateway.endpoint()
        return endpoint.address, (endpoint.http_port, endpoint.proxy_port)

    def network_for(self, policy: str) -> tuple[str, str]:
        if policy in ("gateway", "allowlist"):
            return policy, self._config.agent_network
        if policy == "none":
            return policy, "none"
        if policy == "open" and self._config.open_networks:
            return "open", self._config.open_networks[0]
        if policy in self._config.open_networks:
            return "open", policy
        raise TurnFailure(f"the workspace's network {policy!r} is not allowed on this server: use gateway, "
                          "allowlist or none, or a network an admin listed in AICODE_OPEN_NETWORKS")

    @asynccontextmanager
    async def plan(self, task: TaskRecord, workspace: WorkspaceRecord, *, live: bool = False
                   ) -> AsyncIterator[TurnPlan]:
        """The turn's command, environment and network; its capability token is revoked when the block ends.
        `live`: a session's, whose agent (if its CLI can) takes the prompts on stdin for as long as it runs."""
        author = await self.author(task.turn_user_id)
        try:
            driver = driver_for(task.agent)
        except UnknownAgent as exc:
            raise TurnFailure(str(exc)) from None
        stored = await self._credentials.for_turn(task.turn_user_id, workspace.id, driver.provider)
        if stored is None:
            label = PROVIDER_LABELS[driver.provider]
            raise TurnFailure(
                f"{author[0]} asked for this {driver.label} turn but has no {label} key, and the workspace has no "
                "team key for it: add yours on the Settings page (Model keys), "
                "or a workspace owner adds a team key on the workspace's page")
        policy, network = self.network(workspace)
        # A resumed session reports some CLIs' usage as running totals: what the task used so far comes off.
        before = TokenCount(task.input_tokens, task.output_tokens, task.cache_read_tokens, task.cache_write_tokens)
        turn = AgentTurn(prompt=task.pending_prompt or task.prompt, model=task.model, max_turns=task.max_turns,
                         resume_session_id=task.session_id,
                         usage_before=before if task.session_id is not None else TokenCount(),
                         live=live and driver.live)
        extra: dict[str, str] = {}
        grant, access, confine_to = None, None, None
        if policy != "none":
            grant, access, extra = await self._open_gateway(task, workspace, policy, driver.provider,
                                                            ModelCredential(*stored))
            confine_to = await self.confinement(policy)
        try:
            argv = driver.command(turn, access)
            if task.turns > 0:
                argv = after_git_sync(argv)
            env = driver.environment(access, self._config.agent_env, driver.config_dir)
            # Commits the agent makes itself carry the same identities as the ones aicode makes.
            env |= {"HOME": AGENT_HOME, "GIT_AUTHOR_NAME": author[0], "GIT_AUTHOR_EMAIL": author[1],
                    "GIT_COMMITTER_NAME": COMMITTER[0], "GIT_COMMITTER_EMAIL": COMMITTER[1], **extra}
            yield TurnPlan(driver=driver, turn=turn, argv=argv, env=env, network=network, author=author, grant=grant,
                           access=access, confine_to=confine_to)
        finally:
            if grant is not None:
                await self._grants.revoke(grant)

    async def _open_gateway(self, task: TaskRecord, workspace: WorkspaceRecord, policy: str, provider: str,
                            credential: ModelCredential) -> tuple[TurnGrant, ModelAccess, dict[str, str]]:
        try:
            endpoint = await self._gateway.endpoint()
        except GatewayUnavailable as exc:
            raise TurnFailure(str(exc)) from None
        egress = tuple(workspace.egress_allow) if policy == "allowlist" else ()
        token, grant = await self._grants.issue(task_id=task.id, user_id=task.turn_user_id,
                                                workspace_id=workspace.id, credentials={provider: credential},
                                                egress_allow=egress)
        extra: dict[str, str] = {}
        if policy == "allowlist":
            proxy = endpoint.proxy_url(token)
            # The gateway itself is reached directly, never through the proxy.
            bypass = f"{endpoint.address},localhost,127.0.0.1"
            extra = {"HTTPS_PROXY": proxy, "https_proxy": proxy, "HTTP_PROXY": proxy, "http_proxy": proxy,
                     "NO_PROXY": bypass, "no_proxy": bypass}
        return grant, ModelAccess(endpoint.base_url, token), extra
