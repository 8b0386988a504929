"""A task's work published: its branch pushed to the workspace's remote, its pull request opened on the
forge, its commits rebased onto the latest base branch, and, after each turn, what the workspace asks
for done by itself (re-push, auto pull request, the answer to the forge comment that started it)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from uuid import UUID

import structlog

from aicode.access.policy import Action
from aicode.access.service import AccessService
from aicode.audit.service import AuditLog
from aicode.auth.models import UserRecord
from aicode.auth.repo import UserRepo
from aicode.background import BackgroundTasks
from aicode.crypto import SecretBox
from aicode.errors import AicodeError, BadGatewayError, ConflictError, ForbiddenError, NotFoundError
from aicode.forges.clients import ForgeClient, client_for
from aicode.forges.models import ForgeSettings, PullRequest
from aicode.forges.repo import ForgeRepo
from aicode.git.checkout import CheckoutError
from aicode.git.push import PushError
from aicode.git.store import GitStore
from aicode.git.transfer import TransferError
from aicode.tasks.events import TaskEventBus
from aicode.tasks.models import ACTIVE_STATUSES, TaskRecord, TaskStatus
from aicode.tasks.portable import PortableState, StateUnavailable
from aicode.tasks.repo import TaskEventRepo, TaskRepo
from aicode.tasks.turn_plan import COMMITTER, commit_title
from aicode.workspaces.models import WorkspaceRecord
from aicode.workspaces.remotes import check_remote_host
from aicode.workspaces.repo import WorkspaceRepo
from aicode.workspaces.service import WorkspaceService

__all__ = ["ForgePublisher", "PublishConfig", "Pushed", "Rebased"]

log = structlog.get_logger(__name__)

_PROMPT_SHOWN = 4000
_SUMMARY_SHOWN = 6000
_FILES_SHOWN = 50


@dataclass(frozen=True, slots=True)
class PublishConfig:
    site_url: str  # links back to the task page
    allowed_hosts: tuple[str, ...]
    allow_insecure: bool


@dataclass(frozen=True, slots=True)
class Pushed:
    remote_branch: str
    commit: str
    created: bool
    forced: bool
    up_to_date: bool


@dataclass(frozen=True, slots=True)
class Rebased:
    rebased: bool  # False: the task was on the latest base already
    onto: str
    base_commit: str
    head_commit: str | None
    replayed: int
    pushed: Pushed | None


def _quoted(text: str, limit: int) -> str:
    shown = text.strip()[:limit] + ("…" if len(text.strip()) > limit else "")
    return "\n".join(f"> {line}" if line else ">" for line in shown.splitlines()) or "> (empty)"


class ForgePublisher:
    def __init__(self, config: PublishConfig, repo: ForgeRepo, tasks: TaskRepo, events: TaskEventRepo,
                 bus: TaskEventBus, workspaces: WorkspaceService, workspace_repo: WorkspaceRepo,
                 access: AccessService, users: UserRepo,
                 store: GitStore, state: PortableState, box: SecretBox, audit: AuditLog,
                 background: BackgroundTasks) -> None:
        self._config = config
        self._repo = repo
        self._tasks = tasks
        self._events = events
        self._bus = bus
        self._workspaces = workspaces
        self._workspace_repo = workspace_repo
        self._access = access
        self._users = users
        self._store = store
        self._state = state
        self._box = box
        self._audit = audit
        self._background = background
        # One push, pull request or rebase of a task at a time (in this process).
        self._locks: dict[UUID, asyncio.Lock] = {}

    # -- asked for -----------------------------------------------------------------------------------

    async def push(self, actor: UserRecord, task_id: UUID) -> Pushed:
        task, workspace = await self._task(actor, task_id)
        async with self._lock(task.id):
            pushed = await self._push(await self._fresh(task.id), workspace)
        await self._audit.record(actor, "task.push", ("task", task.id), commit=pushed.commit,
                                 remote_branch=pushed.remote_branch)
        return pushed

    async def pull_request(self, actor: UserRecord, task_id: UUID, *, draft: bool | None, title: str | None,
                           body: str | None) -> PullRequest:
        task, workspace = await self._task(actor, task_id)
        async with self._lock(task.id):
            pull = await self._open(await self._fresh(task.id), workspace,
                                    draft=workspace.auto_pr == "draft" if draft is None else draft,
                                    title=title, body=body)
        await self._audit.record(actor, "task.pull_request", ("task", task.id), url=pull.url, number=pull.number)
        return pull

    async def rebase(self, actor: UserRecord, task_id: UUID) -> Rebased:
        task, workspace = await self._task(actor, task_id)
        async with self._lock(task.id):
            rebased = await self._rebase(actor, await self._fresh(task.id), workspace)
        await self._audit.record(actor, "task.rebase", ("task", task.id), onto=rebased.onto, rebased=rebased.rebased)
        return rebased

    # -- after a turn ----------------------------------------------------------------------------------

    def turn_ended(self, task: TaskRecord) -> None:
        """Called as a turn's record is closed: what the workspace asks for afterwards runs in the background,
        so a slow forge never holds a task slot."""
        self._background.spawn(self._after_turn(task.id), name=f"forge-after-turn-{task.id}")

    async def _after_turn(self, task_id: UUID) -> None:
        try:
            task = await self._tasks.get(task_id)
            workspace = await self._workspace_repo.get(task.workspace_id) if task is not None else None
            if task is None or workspace is None:
                return
            async with self._lock(task.id):
                task = await self._fresh(task.id)
                if task.status == TaskStatus.SUCCEEDED and self._has_commits(task):
                    await self._publish_turn(task, workspace)
                if task.origin is not None:
                    await self._answer_comment(task.id, workspace)
        except Exception as exc:  # never let a forge take down anything else
            log.error("forge.after_turn_failed", task_id=str(task_id), exc_info=exc)

    async def _publish_turn(self, task: TaskRecord, workspace: WorkspaceRecord) -> None:
        forge = ForgeSettings.from_json(workspace.forge)
        # A task asked for from a forge comment always ends in a pull request (a draft, unless the
        # workspace opens ready ones), so the answer to the comment has something to link.
        mode = "draft" if task.origin is not None and workspace.auto_pr == "off" else workspace.auto_pr
        wants_pull = forge is not None and mode != "off" and task.pull_request is None
        if task.pushed_commit is None and not wants_pull:
            return
        if task.pushed_commit != task.head_commit:
            try:
                await self._push(task, workspace)
            except AicodeError as exc:
                await self._notice(task.id, "push_failed", f"the branch was not pushed: {exc.detail}")
                return
            task = await self._fresh(task.id)
        if wants_pull:
            try:
                await self._open(task, workspace, draft=mode == "draft", title=None, body=None)
            except AicodeError as exc:
                await self._notice(task.id, "pull_request_failed", f"the pull request was not opened: {exc.detail}")

    # -- the parts -------------------------------------------------------------------------------------

    async def _push(self, task: TaskRecord, workspace: WorkspaceRecord) -> Pushed:
        if workspace.repo_url.startswith("/"):
            raise ConflictError("the workspace's repository is a folder on the server: aicode pushes only to "
                                "https remotes (use `aicode pull` or the patch to take the work)")
        if not self._has_commits(task):
            raise ConflictError("the task has no commits to push yet")
        assert task.head_commit is not None
        await asyncio.to_thread(check_remote_host, workspace.repo_url, self._config.allowed_hosts)
        await self._ensure_commits(task)
        try:
            result = await self._store.push(workspace.id, workspace.repo_url, self._workspaces.credential(workspace),
                                            task.head_commit, task.branch, task.pushed_commit,
                                            allow_http=self._config.allow_insecure)
        except PushError as exc:
            log.warning("forge.push_refused", task_id=str(task.id), reason=exc.reason, error=str(exc))
            raise _push_error(exc) from None
        await self._repo.set_pushed(task.id, task.branch, result.commit)
        pushed = Pushed(remote_branch=task.branch, commit=result.commit, created=result.created, forced=result.forced,
                        up_to_date=result.up_to_date)
        if not pushed.up_to_date:
            await self._bus.emit(task.id, [("git.push", {"remote_branch": pushed.remote_branch,
                                                         "commit": pushed.commit, "created": pushed.created,
                                                         "forced": pushed.forced})])
        log.info("forge.pushed", task_id=str(task.id), commit=result.commit, forced=result.forced)
        return pushed

    async def _open(self, task: TaskRecord, workspace: WorkspaceRecord, *, draft: bool, title: str | None,
                    body: str | None) -> PullRequest:
        forge = ForgeSettings.from_json(workspace.forge)
        if forge is None:
            raise ConflictError("the workspace has no forge: an owner sets forge {kind, repo} on it first")
        if task.pushed_commit is None or task.pushed_commit != task.head_commit:
            await self._push(task, workspace)
            task = await self._fresh(task.id)
        client = self._client(forge, workspace)
        pull = await client.open_pull_request(
            head=task.branch, base=task.base_branch, title=title or commit_title(task.prompt),
            body=body or await self._describe(task, workspace), draft=draft)
        await self._repo.set_pull_request(task.id, pull.to_json())
        await self._bus.emit(task.id, [("pull_request", {**pull.to_json(), "reused": pull.reused})])
        log.info("forge.pull_request", task_id=str(task.id), url=pull.url, reused=pull.reused)
        return pull

    async def _rebase(self, actor: UserRecord, task: TaskRecord, workspace: WorkspaceRecord) -> Rebased:
        if task.status in ACTIVE_STATUSES:
            raise ConflictError(f"the task is {task.status}: rebase it once its turn has ended")
        if task.base_commit is None:
            raise ConflictError("the task has not started yet: there is nothing to rebase")
        await self._workspaces.sync(actor, workspace.id)
        await self._ensure_commits(task)
        head = task.head_commit or task.base_commit
        try:
            result = await self._store.rebase(workspace.id, task.base_commit, head, task.base_branch, COMMITTER)
        except CheckoutError as exc:
            raise ConflictError(str(exc)) from None
        if result.conflicts:
            shown = ", ".join(result.conflicts[:10]) + (" …" if len(result.conflicts) > 10 else "")
            raise ConflictError(f"the task's changes conflict with {task.base_branch} in {shown}: the task branch "
                                "is left as it was (send a follow-up asking the agent to merge, or resolve it "
                                "yourself)", extra={"conflicts": result.conflicts})
        if result.head == head and result.onto == task.base_commit:
            return Rebased(rebased=False, onto=result.onto, base_commit=task.base_commit,
                           head_commit=task.head_commit, replayed=0, pushed=None)
        new_head = result.head if task.head_commit is not None else None
        if new_head is not None:
            try:
                await self._state.save_commits(task, result.onto, new_head)
            except TransferError as exc:
                raise ConflictError(f"the rebased commits could not be stored: {exc}") from None
        updated = await self._repo.rebased(task.id, old_base=task.base_commit, old_head=task.head_commit,
                                           new_base=result.onto, new_head=new_head)
        if updated is None:
            raise ConflictError("the task changed while it was being rebased (a follow-up started): try again "
                                "once it has ended")
        try:
            # This node's working copy follows the branch, so the next turn starts from the rebased files.
            await self._state.ensure_working_copy(updated)
        except StateUnavailable as exc:
            log.warning("forge.rebase_checkout_failed", task_id=str(task.id), error=str(exc))
        await self._bus.emit(task.id, [("git.rebase", {"onto": result.onto, "base_branch": task.base_branch,
                                                       "head_commit": new_head, "replayed": result.replayed})])
        pushed = None
        if updated.pushed_commit is not None and new_head is not None:
            pushed = await self._push(updated, workspace)
        return Rebased(rebased=True, onto=result.onto, base_commit=result.onto, head_commit=new_head,
                       replayed=result.replayed, pushed=pushed)

    async def _answer_comment(self, task_id: UUID, workspace: WorkspaceRecord) -> None:
        """Answer the forge comment that asked for the task, once: how it ended, with its links."""
        task = await self._fresh(task_id)
        forge = ForgeSettings.from_json(workspace.forge)
        origin = task.origin or {}
        if forge is None or not await self._repo.claim_reply(task.id):
            return
        lines = [f"@{origin.get('login')} the aicode task {self._task_link(task)} {_outcome(task)}."]
        if task.pull_request:
            lines.append(f"Pull request: {task.pull_request.get('url')}")
        elif task.status == TaskStatus.SUCCEEDED and not self._has_commits(task):
            lines.append("The agent changed no files, so there is no pull request.")
        if task.error:
            lines.append(f"\n{_quoted(task.error, 1000)}")
        await self.comment(workspace, int(origin.get("number") or 0), bool(origin.get("on_pull_request")),
                           "\n".join(lines))

    async def comment(self, workspace: WorkspaceRecord, number: int, on_pull_request: bool, body: str) -> None:
        """Comment on the workspace's forge; failures are logged (a comment is never worth an error)."""
        forge = ForgeSettings.from_json(workspace.forge)
        if forge is None or number <= 0:
            return
        try:
            await self._client(forge, workspace).comment(number, on_pull_request, body)
        except AicodeError as exc:
            log.warning("forge.comment_failed", workspace_id=str(workspace.id), number=number, error=exc.detail)

    # -- helpers -------------------------------------------------------------------------------------

    def _client(self, forge: ForgeSettings, workspace: WorkspaceRecord) -> ForgeClient:
        if workspace.forge_token_enc is not None:
            token: str | None = self._box.open(workspace.forge_token_enc)
        else:
            credential = self._workspaces.credential(workspace)
            token = credential[1] if credential else None
        return client_for(forge, token, self._config.allowed_hosts)

    async def _describe(self, task: TaskRecord, workspace: WorkspaceRecord) -> str:
        """The pull request's body: what was asked, the agent's summary, files changed, cost, the task's page."""
        asker = await self._users.get(task.user_id)
        completed = await self._events.last_of_type(task.id, "turn.completed")
        summary = str((completed.data.get("result") if completed else None) or "").strip()
        files = await self._store.files(workspace.id, task.base_commit, task.head_commit) \
            if task.base_commit and task.head_commit else []
        parts = [f"**Asked by {asker.username if asker else 'a former user'}:**", "", _quoted(task.prompt, _PROMPT_SHOWN)]
        if task.turns > 1:
            parts += ["", f"(and {task.turns - 1} follow-up{'s' if task.turns > 2 else ''} on the task page)"]
        if summary:
            parts += ["", "**Summary from the agent:**", "", summary[:_SUMMARY_SHOWN]]
        parts += ["", f"**Files changed ({len(files)}):**", ""]
        parts += [f"- `{f.path}` ({f.status}, +{f.additions} −{f.deletions})" for f in files[:_FILES_SHOWN]]
        if len(files) > _FILES_SHOWN:
            parts.append(f"- … and {len(files) - _FILES_SHOWN} more")
        parts += ["", f"Cost: ${task.cost_usd:.4f} over {task.turns} turn{'s' if task.turns != 1 else ''} "
                      f"({task.agent}). Task: {self._task_link(task)}"]
        return "\n".join(parts)

    def _task_link(self, task: TaskRecord) -> str:
        return f"{self._config.site_url}/tasks/{task.id}"

    @staticmethod
    def _has_commits(task: TaskRecord) -> bool:
        return task.head_commit is not None and task.head_commit != task.base_commit

    async def _ensure_commits(self, task: TaskRecord) -> None:
        """The task's commits in this node's mirror (another node may have made them)."""
        try:
            await self._state.ensure_commits(task)
        except StateUnavailable as exc:
            raise ConflictError(f"the task's commits are not available on this node: {exc}") from None

    async def _task(self, actor: UserRecord, task_id: UUID) -> tuple[TaskRecord, WorkspaceRecord]:
        task = await self._tasks.get(task_id)
        access = await self._access.task(actor, task_id, task.workspace_id if task else None,
                                         task.user_id if task else None, Action.PUBLISH)
        assert task is not None
        return task, access.workspace

    async def _fresh(self, task_id: UUID) -> TaskRecord:
        task = await self._tasks.get(task_id)
        if task is None:
            raise NotFoundError(f"no task with id {task_id}")
        return task

    async def _notice(self, task_id: UUID, code: str, message: str) -> None:
        await self._bus.emit(task_id, [("notice", {"level": "warning", "code": code, "message": message})])

    def _lock(self, task_id: UUID) -> asyncio.Lock:
        return self._locks.setdefault(task_id, asyncio.Lock())


def _outcome(task: TaskRecord) -> str:
    return {TaskStatus.SUCCEEDED: "succeeded", TaskStatus.FAILED: "failed", TaskStatus.CANCELLED: "was cancelled",
            TaskStatus.INTERRUPTED: "was interrupted"}.get(task.status, f"is {task.status}")


def _push_error(exc: PushError) -> AicodeError:
    if exc.reason in ("lease", "refused"):
        return ConflictError(str(exc))
    if exc.reason == "auth":
        return ForbiddenError(str(exc))
    return BadGatewayError(str(exc))

