"""HTTP endpoints of the forge round trip: push, pull request and rebase of a task; forge logins; the
workspace's webhook secret; and the webhook deliveries themselves."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from aicode.auth.models import UserRecord
from aicode.errors import InvalidInputError
from aicode.forges.hooks import ForgeHooks
from aicode.forges.models import Kind
from aicode.forges.publisher import ForgePublisher, Pushed
from aicode.forges.schemas import (
    DeliveryOut,
    ForgeIdentities,
    ForgeIdentitiesUpdate,
    PullRequestCreate,
    PullRequestOut,
    PushOut,
    RebaseOut,
    WebhookSetupOut,
)
from aicode.forges.webhooks import MAX_DELIVERY_BYTES

__all__ = ["ForgeIdentityController", "ForgeTaskController", "WebhookController"]


def _pushed(pushed: Pushed) -> PushOut:
    return PushOut(remote_branch=pushed.remote_branch, commit=pushed.commit, created=pushed.created,
                   forced=pushed.forced, up_to_date=pushed.up_to_date)


class ForgeTaskController(Controller):
    path = "/api/tasks/{task_id:uuid}"
    tags = ["forge"]

    @post("/push", status_code=HTTP_200_OK)
    async def push(self, task_id: FromPath[UUID], request: Request[UserRecord, Any, Any],
                   forge_publisher: NamedDependency[ForgePublisher]) -> PushOut:
        """Push the task's branch `aicode/<id>` to the workspace's remote with its credentials (editors and
        owners). Never overwrites commits the task did not push: a branch someone else moved is a 409."""
        return _pushed(await forge_publisher.push(request.user, task_id))

    @post("/pull-request", status_code=HTTP_201_CREATED)
    async def pull_request(self, task_id: FromPath[UUID], request: Request[UserRecord, Any, Any],
                           forge_publisher: NamedDependency[ForgePublisher],
                           data: JSONBody[PullRequestCreate | None] = None) -> PullRequestOut:
        """Push the branch if needed and open its pull request (GitLab: merge request) on the workspace's
        forge; an open one for the branch is reused. Forge refusals name the cause."""
        given = data or PullRequestCreate()
        pull = await forge_publisher.pull_request(request.user, task_id, draft=given.draft, title=given.title,
                                                  body=given.body)
        return PullRequestOut(url=pull.url, number=pull.number, state=pull.state, draft=pull.draft, reused=pull.reused)

    @post("/rebase", status_code=HTTP_200_OK)
    async def rebase(self, task_id: FromPath[UUID], request: Request[UserRecord, Any, Any],
                     forge_publisher: NamedDependency[ForgePublisher]) -> RebaseOut:
        """Replay the task's commits on the latest base branch (fetched first). A conflict is a 409 listing
        the paths in `conflicts`, and the task branch stays as it was. A pushed task is pushed again."""
        done = await forge_publisher.rebase(request.user, task_id)
        return RebaseOut(rebased=done.rebased, onto=done.onto, base_commit=done.base_commit,
                         head_commit=done.head_commit, replayed=done.replayed,
                         pushed=_pushed(done.pushed) if done.pushed else None)


class ForgeIdentityController(Controller):
    path = "/api/me/forge-identities"
    tags = ["forge"]

    @get("/")
    async def identities(self, request: Request[UserRecord, Any, Any],
                         forge_hooks: NamedDependency[ForgeHooks]) -> ForgeIdentities:
        """Your forge logins: comments they write that mention the trigger start tasks as you."""
        return ForgeIdentities(**await forge_hooks.identities(request.user))

    @put("/")
    async def link(self, data: JSONBody[ForgeIdentitiesUpdate], request: Request[UserRecord, Any, Any],
                   forge_hooks: NamedDependency[ForgeHooks]) -> ForgeIdentities:
        """Link (a login) or unlink (null) your GitHub login and GitLab username."""
        given = {kind: value for kind in ("github", "gitlab")
                 if not isinstance(value := getattr(data, kind), msgspec.UnsetType)}
        return ForgeIdentities(**await forge_hooks.link(request.user, given))


class WebhookController(Controller):
    tags = ["forge"]

    @post("/api/workspaces/{workspace_id:uuid}/webhook", status_code=HTTP_201_CREATED)
    async def set_up(self, workspace_id: FromPath[UUID], request: Request[UserRecord, Any, Any],
                     forge_hooks: NamedDependency[ForgeHooks]) -> WebhookSetupOut:
        """A new webhook secret for the workspace's forge (owners), shown this once, with the URL to give
        the forge; a secret set up before stops working."""
        setup = await forge_hooks.set_up_webhook(request.user, workspace_id)
        return WebhookSetupOut(url=setup.url, secret=setup.secret, kind=setup.kind, content_type="application/json",
                               events=setup.events)

    @delete("/api/workspaces/{workspace_id:uuid}/webhook", status_code=HTTP_204_NO_CONTENT)
    async def remove(self, workspace_id: FromPath[UUID], request: Request[UserRecord, Any, Any],
                     forge_hooks: NamedDependency[ForgeHooks]) -> None:
        """Stop accepting deliveries for the workspace (owners)."""
        await forge_hooks.remove_webhook(request.user, workspace_id)

    @post("/api/hooks/github/{workspace_id:uuid}", exclude_from_auth=True)
    async def github(self, workspace_id: FromPath[UUID], request: Request[Any, Any, Any],
                     forge_hooks: NamedDependency[ForgeHooks]) -> Response[DeliveryOut]:
        """A GitHub webhook delivery, signed with the workspace's secret (`X-Hub-Signature-256`). An issue or
        pull-request comment mentioning the trigger starts a task for the linked commenter."""
        return await self._deliver("github", workspace_id, request, forge_hooks)

    @post("/api/hooks/gitlab/{workspace_id:uuid}", exclude_from_auth=True)
    async def gitlab(self, workspace_id: FromPath[UUID], request: Request[Any, Any, Any],
                     forge_hooks: NamedDependency[ForgeHooks]) -> Response[DeliveryOut]:
        """A GitLab webhook delivery carrying the workspace's secret (`X-Gitlab-Token`); a note mentioning the
        trigger on an issue or merge request starts a task for the linked commenter."""
        return await self._deliver("gitlab", workspace_id, request, forge_hooks)

    @staticmethod
    async def _deliver(kind: Kind, workspace_id: UUID, request: Request[Any, Any, Any],
                       hooks: ForgeHooks) -> Response[DeliveryOut]:
        body = await request.body()
        if len(body) > MAX_DELIVERY_BYTES:
            raise InvalidInputError(f"the delivery is larger than {MAX_DELIVERY_BYTES} bytes")
        delivery = await hooks.deliver(kind, workspace_id, body, request.headers)
        answer = DeliveryOut(status=delivery.status, detail=delivery.detail,
                             task_id=str(delivery.task_id) if delivery.task_id else None)
        return Response(answer, status_code=HTTP_202_ACCEPTED if delivery.task_id else HTTP_200_OK)
