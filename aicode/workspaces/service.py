"""Registering repositories as workspaces and keeping their mirrors in step with the remote."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit
from uuid import UUID

import msgspec
import structlog

from aicode.access.policy import Action, Role, listing_scope
from aicode.access.service import AccessService
from aicode.audit.service import AuditLog
from aicode.auth.models import UserRecord
from aicode.background import BackgroundTasks
from aicode.crypto import SecretBox
from aicode.errors import ConflictError, ForbiddenError, InvalidInputError, NotFoundError, TooManyError
from aicode.forges.models import DEFAULT_API_URLS, DEFAULT_TRIGGER, ForgeSettings
from aicode.git.mirror import MirrorError, MirrorState
from aicode.git.store import GitStore
from aicode.http.urls import without_userinfo
from aicode.workspaces.models import WorkspaceChange, WorkspaceRecord, WorkspaceStatus
from aicode.workspaces.remotes import check_remote_host
from aicode.workspaces.repo import WorkspaceRepo
from aicode.workspaces.schemas import ForgeIn, Limits, WorkspaceCreate, WorkspaceUpdate
from aicode.workspaces.sources import RepoSource, parse_repo_source, resolve_local_git_dir

__all__ = ["WorkspaceService"]

log = structlog.get_logger(__name__)

_FETCHES_PER_USER = 3


def _limits(limits: Limits | None) -> dict[str, Any] | None:
    """The resource limits as stored (jsonb)."""
    return None if limits is None else cast(dict[str, Any], msgspec.to_builtins(limits))


class WorkspaceService:
    def __init__(
        self,
        repo: WorkspaceRepo,
        box: SecretBox,
        background: BackgroundTasks,
        store: GitStore,
        access: AccessService,
        audit: AuditLog,
        *,
        data_dir: Path,
        local_repo_roots: tuple[Path, ...],
        network_policies: tuple[str, ...],
        open_networks: tuple[str, ...],
        max_per_user: int = 50,
        allowed_git_hosts: tuple[str, ...] = (),
        allow_insecure_remotes: bool = False,
    ) -> None:
        self._repo = repo
        self._box = box
        self._background = background
        self._store = store
        self._access = access
        self._audit = audit
        self._data_dir = data_dir
        self._roots = local_repo_roots
        self._policies = network_policies
        self._open_networks = open_networks
        self._max_per_user = max_per_user
        self._allowed_hosts = allowed_git_hosts
        self._allow_insecure = allow_insecure_remotes
        # Clones and fetches in flight per person: one member cannot fill the fetch workers.
        self._fetching: Counter[UUID] = Counter()
        # One clone or fetch at a time per workspace (within this process).
        self._locks: dict[UUID, asyncio.Lock] = {}

    def credential(self, workspace: WorkspaceRecord) -> tuple[str, str] | None:
        if workspace.repo_token_enc is None:
            return None
        user, _, token = self._box.open(workspace.repo_token_enc).partition(":")
        return user, token

    # -- reading -------------------------------------------------------------------------------

    async def get(self, actor: UserRecord, workspace_id: UUID, action: Action = Action.VIEW) -> WorkspaceRecord:
        """The workspace if `actor` may do `action` there (see `aicode.access`): 404 if they may not see it."""
        return (await self._access.workspace(actor, workspace_id, action)).workspace

    async def role(self, actor: UserRecord, workspace_id: UUID) -> Role | None:
        """The actor's role in the workspace (None: not a member); no check, for describing it to them."""
        return await self._access.role(actor, workspace_id)

    async def list(self, actor: UserRecord) -> list[tuple[WorkspaceRecord, Role | None]]:
        """The workspaces `actor` has a role in (an admin: all), each with that role."""
        workspaces = await self._repo.list(listing_scope(actor))
        roles = await self._access.roles(actor)
        return [(workspace, roles.get(workspace.id)) for workspace in workspaces]

    # -- changing ------------------------------------------------------------------------------

    async def create(self, actor: UserRecord, request: WorkspaceCreate) -> WorkspaceRecord:
        """Store the workspace as `cloning` and start the mirror clone in the background."""
        if not actor.is_admin and await self._repo.count_created_by(actor.id) >= self._max_per_user:
            raise TooManyError(f"you have created {self._max_per_user} workspaces, the most this server allows "
                               "one person (AICODE_MAX_WORKSPACES_PER_USER): delete one first")
        source = await asyncio.to_thread(parse_repo_source, request.repo_url, request.repo_token, self._roots,
                                         (self._data_dir,), self._allow_insecure)
        if not source.is_local:
            await asyncio.to_thread(check_remote_host, source.url, self._allowed_hosts)
        self._check_fetch_room(actor)
        self._check_network(actor, request.network)
        forge = await self._forge_settings(request.forge) if request.forge is not None else WorkspaceChange()
        setup = (request.setup or "").strip() or None
        workspace = await self._repo.insert(
            owner_id=actor.id,
            name=request.name,
            repo_url=source.url,
            repo_token_enc=self._seal(source),
            default_branch=request.default_branch,
            image=request.image,
            limits=_limits(request.limits) or {},
            network=request.network,
            egress_allow=tuple(request.egress_allow or ()),
            forge=WorkspaceChange(forge=forge.forge, forge_token_enc=forge.forge_token_enc, auto_pr=request.auto_pr,
                                  setup=setup, setup_timeout_s=request.setup_timeout_s),
        )
        log.info("workspace.created", workspace_id=str(workspace.id), name=workspace.name, repo=source.url)
        await self._audit.record(actor, "workspace.create", ("workspace", workspace.id), name=workspace.name,
                                 repo_url=source.url)
        self._start_clone(workspace)
        return workspace

    async def update(self, actor: UserRecord, workspace_id: UUID, request: WorkspaceUpdate) -> WorkspaceRecord:
        workspace = await self.get(actor, workspace_id, Action.MANAGE)
        if request.network is not None:
            self._check_network(actor, request.network)
        budget_given = not isinstance(request.monthly_budget_usd, msgspec.UnsetType)
        if not isinstance(request.monthly_budget_usd, msgspec.UnsetType):
            if not actor.is_admin:
                raise ForbiddenError("only an admin can set a workspace's monthly budget")
            await self._repo.set_monthly_budget(workspace.id, request.monthly_budget_usd)
        sealed = None
        if request.repo_token is not None:
            if not workspace.repo_url.startswith("https://"):
                raise ConflictError("repo_token only applies to https repositories")
            current = self.credential(workspace)
            user = current[0] if current else "x-access-token"
            sealed = self._box.seal(f"{user}:{request.repo_token}")
        cleared: list[str] = []
        forge = WorkspaceChange()
        if request.forge is None:
            cleared += ["forge", "forge_token_enc", "webhook_secret_enc"]
        elif not isinstance(request.forge, msgspec.UnsetType):
            forge = await self._forge_settings(request.forge)
            before = ForgeSettings.from_json(workspace.forge)
            if request.forge.token is None and before is not None and before.kind != request.forge.kind:
                cleared.append("forge_token_enc")  # a token for one forge is no token for another
        setup: str | None = None
        if not isinstance(request.setup, msgspec.UnsetType):
            setup = (request.setup or "").strip() or None
            if setup is None:
                cleared += ["setup", "setup_timeout_s"]
        change = WorkspaceChange(
            name=request.name, repo_token_enc=sealed, default_branch=request.default_branch, image=request.image,
            limits=_limits(request.limits), network=request.network,
            egress_allow=tuple(request.egress_allow) if request.egress_allow is not None else None,
            forge=forge.forge, forge_token_enc=forge.forge_token_enc, auto_pr=request.auto_pr, setup=setup,
            setup_timeout_s=request.setup_timeout_s, cleared=tuple(cleared),
        )
        updated = await self._repo.update(workspace.id, change)
        if updated is None:
            raise NotFoundError(f"no workspace with id {workspace_id}")
        log.info("workspace.updated", workspace_id=str(workspace.id), fields=change.names())
        changed = {name.removesuffix("_enc") for name in change.names()}  # names only: never a token
        if budget_given:
            changed.add("monthly_budget_usd")
        await self._audit.record(actor, "workspace.update", ("workspace", workspace.id), fields=sorted(changed))
        return updated

    async def delete(self, actor: UserRecord, workspace_id: UUID) -> None:
        """Delete the workspace, its tasks, its mirror and their working copies (not the remote)."""
        workspace = await self.get(actor, workspace_id, Action.DELETE)
        async with self._lock(workspace.id):
            task_ids = await self._repo.delete_idle(workspace.id)
            if task_ids is None:
                raise ConflictError("the workspace has queued or running tasks: cancel them first")
            await self._store.remove_mirror(workspace.id)
            for task_id in task_ids:
                await self._store.remove_task(workspace.id, task_id)
        log.info("workspace.deleted", workspace_id=str(workspace.id), name=workspace.name, tasks=len(task_ids))
        await self._audit.record(actor, "workspace.delete", ("workspace", workspace.id), name=workspace.name,
                                 tasks=len(task_ids))

    async def sync(self, actor: UserRecord, workspace_id: UUID) -> WorkspaceRecord:
        """Fetch from the remote now (or retry a failed clone) and answer with the outcome."""
        workspace = await self.get(actor, workspace_id, Action.SYNC)
        if workspace.status == WorkspaceStatus.CLONING:
            raise ConflictError("the workspace is still cloning; try again when its status is ready")
        self._check_fetch_room(actor)
        return await self._mirror(workspace, actor.id)

    async def ensure_local(self, workspace: WorkspaceRecord) -> None:
        """This node's mirror of the workspace: cloned when it has none, fetched when it is older than
        the workspace's last sync (which may have happened on another node)."""
        if await self._mirror_current(workspace):
            return
        async with self._lock(workspace.id):
            if await self._mirror_current(workspace):
                return
            try:
                await self._fetch(workspace)
            except (MirrorError, InvalidInputError) as exc:
                message = exc.detail if isinstance(exc, InvalidInputError) else str(exc)
                log.warning("workspace.local_mirror_failed", workspace_id=str(workspace.id), error=message,
                            cause=exc.cause if isinstance(exc, MirrorError) else None)
                raise ConflictError(f"this node could not fetch the workspace's repository: {message}") from None
            await self._store.record_synced(workspace.id, workspace.last_synced_at or datetime.now(UTC))

    async def _mirror_current(self, workspace: WorkspaceRecord) -> bool:
        here = await self._store.synced_at(workspace.id)
        return here is not None and (workspace.last_synced_at is None or here >= workspace.last_synced_at)

    async def resume_unfinished_clones(self) -> None:
        """Clones cut short by a stop or crash start again (called at start-up)."""
        for workspace in await self._repo.list_by_status(WorkspaceStatus.CLONING):
            self._start_clone(workspace)

    # -- internals -----------------------------------------------------------------------------

    async def _forge_settings(self, given: ForgeIn) -> WorkspaceChange:
        """The forge as stored (its API address checked like a repository's) and its sealed token."""
        api_url = (given.api_url or DEFAULT_API_URLS[given.kind]).strip().rstrip("/")
        parts = urlsplit(api_url)
        if parts.scheme not in ("https", "http") or not parts.hostname or parts.query or parts.fragment \
                or parts.username or parts.password:
            raise InvalidInputError(f"forge.api_url {without_userinfo(api_url)!r} must be an https URL without "
                                    "credentials, query or fragment (such as https://github.example.com/api/v3)")
        if parts.scheme == "http" and not self._allow_insecure:
            raise InvalidInputError("forge.api_url must use https (a token would travel unencrypted over http)")
        await asyncio.to_thread(check_remote_host, api_url, self._allowed_hosts)
        forge = ForgeSettings(kind=given.kind, api_url=api_url, repo=given.repo, trigger=given.trigger or DEFAULT_TRIGGER)
        return WorkspaceChange(forge=forge.to_json(),
                               forge_token_enc=self._box.seal(given.token) if given.token else None)

    def network_choices(self, actor: UserRecord) -> builtins.list[str]:
        """The network policies `actor` may give a workspace."""
        return [*self._policies, *(self._open_networks if actor.is_admin else ())]

    def _check_network(self, actor: UserRecord, network: str | None) -> None:
        """`gateway`, `allowlist`, `none`, or (admins only) `open` / a network listed in AICODE_OPEN_NETWORKS."""
        if network is None or network in self._policies:
            return
        if network == "open" or network in self._open_networks:
            if not self._open_networks:
                raise InvalidInputError("this server has no open networks (an admin lists them in AICODE_OPEN_NETWORKS)")
            if not actor.is_admin:
                raise ForbiddenError(f"only an admin can give a workspace the open network {network!r}")
            return
        listed = ", ".join((*self._policies, *self._open_networks))
        raise InvalidInputError(f"unknown network {network!r}: use one of {listed}")

    def _seal(self, source: RepoSource) -> bytes | None:
        return self._box.seal(":".join(source.credential)) if source.credential else None

    def _lock(self, workspace_id: UUID) -> asyncio.Lock:
        return self._locks.setdefault(workspace_id, asyncio.Lock())

    def _check_fetch_room(self, actor: UserRecord) -> None:
        if self._fetching[actor.id] >= _FETCHES_PER_USER:
            raise TooManyError(f"you already have {_FETCHES_PER_USER} clones or fetches under way: wait for one to "
                               "end", retry_after_s=10)

    def _start_clone(self, workspace: WorkspaceRecord) -> None:
        self._background.spawn(self._clone_in_background(workspace), name=f"clone-{workspace.id}")

    async def _clone_in_background(self, workspace: WorkspaceRecord) -> None:
        with contextlib.suppress(NotFoundError):  # deleted before the clone finished: nothing to report
            await self._mirror(workspace, workspace.owner_id)

    async def _mirror(self, workspace: WorkspaceRecord, for_user: UUID) -> WorkspaceRecord:
        """Clone or fetch, then record `ready` or `error` with a message a person can act on."""
        self._fetching[for_user] += 1
        try:
            async with self._lock(workspace.id):
                return await self._sync(workspace)
        finally:
            self._fetching[for_user] -= 1
            if not self._fetching[for_user]:
                del self._fetching[for_user]

    async def _fetch(self, workspace: WorkspaceRecord) -> MirrorState:
        """Clone or fetch this node's mirror; MirrorError or InvalidInputError say why not."""
        local = workspace.repo_url.startswith("/")
        # Checked again at every sync: what a path holds, or the address behind a name, may have changed.
        if local:
            await asyncio.to_thread(resolve_local_git_dir, workspace.repo_url, self._roots, (self._data_dir,))
        else:
            await asyncio.to_thread(check_remote_host, workspace.repo_url, self._allowed_hosts)
        return await self._store.sync_mirror(workspace.id, workspace.repo_url, self.credential(workspace),
                                             local=local)

    async def _sync(self, workspace: WorkspaceRecord) -> WorkspaceRecord:
        try:
            state = await self._fetch(workspace)
        except (MirrorError, InvalidInputError) as exc:
            message = exc.detail if isinstance(exc, InvalidInputError) else str(exc)
            cause = exc.cause if isinstance(exc, MirrorError) else None
            log.warning("workspace.mirror_failed", workspace_id=str(workspace.id), error=message, cause=cause)
            updated = await self._repo.set_status(workspace.id, WorkspaceStatus.ERROR, error=message)
        else:
            updated = await self._repo.set_status(
                workspace.id, WorkspaceStatus.READY, default_branch=state.default_branch, synced=True
            )
            log.info("workspace.mirrored", workspace_id=str(workspace.id), branches=len(state.branches))
            if updated is not None and updated.last_synced_at is not None:
                await self._store.record_synced(workspace.id, updated.last_synced_at)
        if updated is None:
            # Deleted while cloning: drop what the clone wrote.
            await self._store.remove_mirror(workspace.id)
            raise NotFoundError(f"no workspace with id {workspace.id}")
        return updated
