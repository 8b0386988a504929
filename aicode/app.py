"""`create_app(settings)`: the one place where the server's parts are built and wired together."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

import structlog
from litestar import Litestar, Request, Response
from litestar.config.app import AppConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException, ValidationException
from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin
from litestar.plugins.prometheus import PrometheusConfig
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from redis.asyncio import Redis

from aicode import __version__
from aicode.access.changes import AccessChanges
from aicode.access.controller import MemberController
from aicode.access.members import MemberService
from aicode.access.repo import MemberRepo
from aicode.access.service import AccessService
from aicode.agents.catalog import AgentCatalog
from aicode.agents.controller import AgentController
from aicode.audit.controller import AuditController
from aicode.audit.repo import AuditRepo
from aicode.audit.service import AuditLog
from aicode.auth.controller import AdminUserController, AuthController, MeController, TokenController
from aicode.auth.csrf import build_csrf_middleware
from aicode.auth.repo import RevokedJwtRepo, TokenRepo, UserRepo
from aicode.auth.security import PUBLIC_PATHS, build_jwt_auth
from aicode.auth.service import AuthService
from aicode.auth.sso.config import build_single_sign_on
from aicode.background import BackgroundTasks
from aicode.channels import build_channels
from aicode.comments.controller import CommentController
from aicode.comments.repo import CommentRepo
from aicode.comments.service import CommentService
from aicode.containers.confinement import NetworkConfinement
from aicode.containers.engine import DockerEngine
from aicode.containers.image_build import ImageBuilds
from aicode.containers.image_controller import ImageController
from aicode.containers.network import AgentNetwork
from aicode.containers.network_holders import NetworkHolders
from aicode.containers.runtime import ContainerRuntime
from aicode.credentials.controller import CredentialController, WorkspaceCredentialController
from aicode.credentials.repo import CredentialRepo, WorkspaceCredentialRepo
from aicode.credentials.service import CredentialService
from aicode.crypto import (
    SecretBox,
    csrf_signing_key,
    jwt_signing_key,
    load_or_create_secret_key,
    secret_key_fingerprint,
)
from aicode.db.connect import database_url
from aicode.db.migrations import apply_migrations
from aicode.db.notifications import Notifications
from aicode.db.pool import Database
from aicode.errors import AicodeError
from aicode.forges.controller import ForgeIdentityController, ForgeTaskController, WebhookController
from aicode.forges.hooks import ForgeHooks
from aicode.forges.publisher import ForgePublisher, PublishConfig
from aicode.forges.repo import ForgeRepo
from aicode.gateway.backend import ServerGatewayBackend
from aicode.gateway.controller import UsageController
from aicode.gateway.grants import GrantStore
from aicode.gateway.listener import GatewayListener
from aicode.gateway.prices import PriceTable
from aicode.gateway.repo import GrantRepo, UsageRepo
from aicode.gateway.runtime import GatewayRuntime
from aicode.git.store import GitStore
from aicode.git.worker import GitWorker
from aicode.health.controller import HealthController
from aicode.http.input_guard import RequestInputGuard
from aicode.http.openapi import ErrorResponsesPlugin, openapi_config
from aicode.http.security_headers import add_security_headers
from aicode.http.urls import redact_userinfo
from aicode.metrics.controller import MetricsController
from aicode.nodes.controller import NodeController
from aicode.nodes.repo import NodeRepo
from aicode.notifications.controller import OwnNotificationController, WorkspaceNotificationController
from aicode.notifications.delivery import NotificationDelivery
from aicode.notifications.repo import NotificationRepo
from aicode.notifications.service import NotificationService
from aicode.request_log import RequestLogMiddleware
from aicode.resources import resource_file
from aicode.settings import NETWORK_POLICIES, Settings, SettingsError
from aicode.storage.identity import HostIdentities, server_identities
from aicode.storage.layout import DataLayout
from aicode.tasks.controller import TaskController, TaskStreamController
from aicode.tasks.events import TaskEventBus
from aicode.tasks.execution import AgentExecution
from aicode.tasks.list_controller import TaskListController
from aicode.tasks.live_session import SessionRunner
from aicode.tasks.models import TaskRecord
from aicode.tasks.portable import PortableState
from aicode.tasks.queue_repo import TaskQueueRepo
from aicode.tasks.repo import TaskEventRepo, TaskRepo
from aicode.tasks.retention import DiskFloor, Retention
from aicode.tasks.runner import TaskRunner
from aicode.tasks.service import TaskService
from aicode.tasks.session_controller import SessionController, SessionStreamController
from aicode.tasks.session_repo import SessionRepo
from aicode.tasks.setup_command import SetupCommands
from aicode.tasks.state_repo import TaskStateRepo
from aicode.tasks.supervisor import NodeConfig, TaskSupervisor
from aicode.tasks.turn_container import ContainerConfig, TurnContainers
from aicode.tasks.turn_plan import PlannerConfig, TurnPlanner
from aicode.tasks.warm_start import WarmStart
from aicode.tasks.working_copy import WorkingCopies
from aicode.tracing import Tracing, route_span_details
from aicode.web import template_config, web_route_handlers
from aicode.web.errors import error_page, wants_html
from aicode.web.shown_once import ShownOnce
from aicode.workspaces.controller import WorkspaceController
from aicode.workspaces.repo import WorkspaceRepo
from aicode.workspaces.service import WorkspaceService

__all__ = ["create_app"]

log = structlog.get_logger(__name__)

MAX_REQUEST_BODY_BYTES = 1024 * 1024


def _domain_error(request: Request[Any, Any, Any], exc: AicodeError) -> Response[Any]:
    if wants_html(request):
        return error_page(request, exc)
    # A message may quote a URL the client sent: its embedded credentials are never echoed back.
    detail = redact_userinfo(exc.detail)
    headers = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s is not None else None
    body = {**exc.extra, "status_code": exc.status_code, "detail": detail}
    return Response(body, status_code=exc.status_code, headers=headers)


def _detail(exc: HTTPException) -> str:
    """The message, with what each failed validation said, so `detail` alone tells what was wrong."""
    if not isinstance(exc, ValidationException) or not isinstance(exc.extra, list):
        return exc.detail
    problems = [
        f"{item.get('key') or 'body'}: {item.get('message')}" if isinstance(item, dict) else str(item)
        for item in exc.extra
    ]
    return f"{exc.detail}: {'; '.join(problems)}" if problems else exc.detail


def _unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if wants_html(request):
        return error_page(request, exc)
    if isinstance(exc, HTTPException) and exc.status_code < 500:
        body: dict[str, object] = {"status_code": exc.status_code, "detail": _detail(exc)}
        if exc.extra:
            body["extra"] = exc.extra
        return Response(body, status_code=exc.status_code, headers=exc.headers)
    # The trace goes to the log; the client gets no internals (nor the message of a framework 5xx, such
    # as "'user' is not defined in scope").
    log.error("request.unhandled_error", path=request.url.path, exc_info=exc)
    status = exc.status_code if isinstance(exc, HTTPException) else HTTP_500_INTERNAL_SERVER_ERROR
    return Response(
        {"status_code": status, "detail": "internal server error (the server log has the details)"},
        status_code=status,
    )


def _announce_setup_code(code: str, settings: Settings) -> None:
    # Printed on the console only (not the structured log): it is a one-time secret.
    url = f"http://{settings.host}:{settings.port}"
    print(
        "\n  aicode has no users yet. Create the first admin with either:\n"
        "    aicode users create NAME --admin\n"
        f"  or, once only, with this setup code:\n"
        f"    curl -X POST {url}/api/auth/setup -H 'Content-Type: application/json' \\\n"
        f"      -d '{{\"setup_code\": \"{code}\", \"username\": \"admin\", \"password\": \"…\"}}'\n",
        file=sys.stderr,
        flush=True,
    )


def server_identity(data_dir: Path) -> str:
    """A stable id for this server (host + data dir), used to label and later find its containers."""
    return hashlib.sha256(f"{socket.gethostname()}:{data_dir}".encode()).hexdigest()[:16]


def _identities(settings: Settings) -> HostIdentities:
    try:
        return server_identities(settings.agent_uid, settings.agent_gid, settings.git_uid, settings.git_gid)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None


_RETENTION_EVERY_S = 3600.0


async def _collect_periodically(retention: Retention, days: int) -> None:
    """AICODE_RETENTION_DAYS: once an hour, remove what tasks ended longer ago than that keep."""
    while True:
        try:
            await retention.collect(days)
        except Exception as exc:  # a failed round is retried next hour; it must not stop the server
            log.warning("retention.failed", exc_info=exc)
        await asyncio.sleep(_RETENTION_EVERY_S)


def _http_metrics() -> PrometheusConfig:
    """aicode_http_requests_total and aicode_http_request_duration_seconds by method, route template and status."""
    return PrometheusConfig(app_name="aicode", prefix="aicode_http", group_path=True, exclude_unhandled_paths=True,
                            exclude=["^/metrics$", "^/static/"], scopes={ScopeType.HTTP},
                            buckets=[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30])


def create_app(settings: Settings) -> Litestar:
    """Build the server: services, their dependencies, and the lifespan that opens and closes them."""
    layout = DataLayout(settings.data_dir, _identities(settings))
    layout.prepare()
    secret_key = load_or_create_secret_key(settings.data_dir, settings.secret_key)
    jwt_key = jwt_signing_key(secret_key)
    box = SecretBox(secret_key)
    shown_once = ShownOnce(secret_key)
    database = Database(settings.database_url)
    docker_engine = DockerEngine(settings.docker_url)
    background = BackgroundTasks()
    git_worker = GitWorker(layout.git_root, layout.ids)
    git_fetcher = GitWorker(layout.git_root, layout.ids, processes=2, abandon_on_close=True)
    store = GitStore(layout, git_worker, git_fetcher)

    redis = Redis.from_url(settings.redis_url) if settings.redis_url else None
    channels = build_channels(redis)
    changes = AccessChanges(channels)
    audit = AuditLog(AuditRepo(database))
    auth_service = AuthService(
        UserRepo(database), TokenRepo(database), RevokedJwtRepo(database),
        jwt_key=jwt_key, token_ttl_s=settings.token_ttl_s, changes=changes, audit=audit,
    )
    members = MemberRepo(database)
    access = AccessService(WorkspaceRepo(database), members, UserRepo(database))
    workspace_service = WorkspaceService(
        WorkspaceRepo(database), box, background, store, access, audit, data_dir=settings.data_dir,
        local_repo_roots=settings.local_repo_roots, network_policies=NETWORK_POLICIES,
        open_networks=settings.open_networks, max_per_user=settings.max_workspaces_per_user,
        allowed_git_hosts=settings.allowed_git_hosts, allow_insecure_remotes=settings.allow_insecure_remotes,
    )
    jwt_auth = build_jwt_auth(auth_service, jwt_key, settings.token_ttl_s)
    sso = build_single_sign_on(settings, database, secret_key)
    credential_service = CredentialService(CredentialRepo(database), WorkspaceCredentialRepo(database), box, audit)
    member_service = MemberService(access, members, UserRepo(database), changes, audit)

    task_repo = TaskRepo(database)
    bus = TaskEventBus(database, TaskEventRepo(database), channels)
    runtime = ContainerRuntime(docker_engine)
    server_id = server_identity(settings.data_dir)

    grants = GrantStore(GrantRepo(database))

    async def notify(task_id: UUID, level: str, code: str, message: str) -> None:
        await bus.emit(task_id, [("notice", {"level": level, "code": code, "message": message})])

    usage_repo = UsageRepo(database)
    gateway_backend = ServerGatewayBackend(grants, usage_repo, background, notify)
    gateway = GatewayRuntime(
        AgentNetwork(docker_engine, settings.agent_network),
        GatewayListener(gateway_backend, PriceTable.load(settings.model_prices), upstream=settings.anthropic_upstream,
                        openai_upstream=settings.openai_upstream, gemini_upstream=settings.gemini_upstream),
    )
    planner = TurnPlanner(
        PlannerConfig(agent_network=settings.agent_network, default_network=settings.workspace_network,
                      open_networks=settings.open_networks,
                      agent_env={name: os.environ[name] for name in settings.agent_env if name in os.environ}),
        credential_service, grants, gateway, UserRepo(database),
    )
    # Only next to a local engine can the server enter its containers' network namespaces.
    confinement = NetworkConfinement(runtime, enabled=os.geteuid() == 0 and docker_engine.url.startswith("unix://"))
    holders = NetworkHolders(runtime, confinement, background, image=settings.workspace_image, server_id=server_id,
                             spare=settings.max_concurrent_tasks)
    state = PortableState(TaskStateRepo(database), store, layout)
    containers = TurnContainers(
        ContainerConfig(server_id=server_id, default_image=settings.workspace_image,
                        container_user=layout.ids.container_user),
        runtime, layout, confinement, holders, warm=settings.warm_pool,
    )
    copies = WorkingCopies(task_repo, store, workspace_service, state, site_url=settings.site_url)
    publisher = ForgePublisher(
        PublishConfig(site_url=settings.site_url, allowed_hosts=settings.allowed_git_hosts,
                      allow_insecure=settings.allow_insecure_remotes),
        ForgeRepo(database), task_repo, TaskEventRepo(database), bus, workspace_service, WorkspaceRepo(database),
        access, UserRepo(database), store, state, box, audit, background,
    )
    notification_repo = NotificationRepo(database)
    notification_delivery = NotificationDelivery(notification_repo, box, retry_base_s=settings.notify_retry_base_s)
    notification_service = NotificationService(notification_repo, task_repo, notification_delivery, box, access, audit,
                                               background, site_url=settings.site_url)

    def turn_ended(task: TaskRecord) -> None:
        """Each turn's end, told to the forge round trip and to notification webhooks."""
        publisher.turn_ended(task)
        notification_service.task_ended(task)

    execution = AgentExecution(runtime, bus)
    image_builds = ImageBuilds(runtime, image=settings.workspace_image,
                               containerfile=settings.containerfile or resource_file("Containerfile"))
    agent_catalog = AgentCatalog(runtime, default_image=settings.workspace_image,
                                 container_user=layout.ids.container_user, server_id=server_id)
    tracing = Tracing.from_env(os.environ)
    runner = TaskRunner(settings.node_name, task_repo, WorkspaceRepo(database), bus, planner, copies, containers,
                        execution, layout, SetupCommands(execution, bus, layout), turn_ended=turn_ended,
                        tracer=tracing.tracer)
    node_repo = NodeRepo(database)
    queue = TaskQueueRepo(database)
    node = NodeConfig(
        name=settings.node_name, version=__version__, secret_fingerprint=secret_key_fingerprint(secret_key),
        lease_s=settings.node_lease_s, capacity=settings.max_concurrent_tasks,
        per_user=settings.max_running_per_user, per_workspace=settings.max_running_per_workspace,
    )
    session_repo = SessionRepo(database)
    warm_start = WarmStart(planner, containers, task_repo, WorkspaceRepo(database))
    sessions = SessionRunner(settings.node_name, task_repo, session_repo, WorkspaceRepo(database), bus, planner, copies,
                             containers, execution, runtime, layout, SetupCommands(execution, bus, layout),
                             idle_s=settings.session_idle_s, turn_ended=turn_ended,
                             waiting=notification_service.session_waiting)
    supervisor = TaskSupervisor(runner, sessions, queue, node_repo, bus, runtime, Notifications(database, background),
                                background, config=node, server_id=server_id)
    disk = DiskFloor(settings.data_dir, settings.min_free_disk_mb)
    retention = Retention(layout, TaskStateRepo(database))
    task_service = TaskService(task_repo, queue, bus, workspace_service, supervisor, store, state, access, changes,
                               audit, disk, session_repo, warm_start, default_timeout_s=settings.task_timeout_s,
                               max_timeout_s=settings.max_task_timeout_s,
                               max_queued_per_user=settings.max_queued_per_user)
    comment_service = CommentService(CommentRepo(database), task_service)
    hooks = ForgeHooks(ForgeRepo(database), WorkspaceRepo(database), access, UserRepo(database), task_service,
                       publisher, box, audit, background, site_url=settings.site_url)

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            url = await stack.enter_async_context(database_url(settings))
            await database.open(url)
            stack.push_async_callback(database.close)
            async with database.pool.acquire() as conn:
                await apply_migrations(conn)
            await docker_engine.open()
            stack.push_async_callback(docker_engine.close)
            stack.push_async_callback(image_builds.close)
            stack.push_async_callback(holders.close)
            stack.push_async_callback(git_worker.close)
            stack.push_async_callback(git_fetcher.close)
            stack.push_async_callback(notification_delivery.close)  # once its loop is stopped
            stack.push_async_callback(background.close)
            stack.callback(tracing.shutdown)
            # Entered here rather than registered as a plugin: the channels must be up before the
            # supervisor publishes its first event and stay up until it has published its last.
            if redis is not None:
                stack.push_async_callback(redis.aclose)
            await stack.enter_async_context(channels)
            await auth_service.ensure_first_admin(settings.bootstrap_admin)
            if auth_service.setup_code:
                _announce_setup_code(auth_service.setup_code, settings)
            await workspace_service.resume_unfinished_clones()
            stack.push_async_callback(gateway.close)
            # The agent network and the gateway's listeners are made now, so the first task does not
            # wait for them; if Docker is not up yet, the first task that needs them tries again.
            background.spawn(gateway.prepare(), name="gateway-prepare")
            await supervisor.start()
            stack.push_async_callback(supervisor.stop)
            # After the supervisor removed what an earlier run left behind: a container for the next task.
            background.spawn(warm_start.warm_latest(), name="warm-start")
            await grants.forget_ended()
            background.spawn(notification_delivery.run(), name="notification-delivery")
            if settings.retention_days is not None:
                background.spawn(_collect_periodically(retention, settings.retention_days), name="retention")
            log.info("server.started", version=__version__, embedded_database=settings.database_url is None)
            yield

    def add_csrf(config: AppConfig) -> AppConfig:
        # Appended after the auth middleware, so it runs inside it: a request without credentials gets
        # its 401 rather than a CSRF 403.
        # Served over https in-process: the CSRF cookie is Secure too (the session cookie follows the scheme).
        config.middleware.append(build_csrf_middleware(csrf_signing_key(secret_key),
                                                       secure=settings.tls_cert is not None))
        return config

    def add_request_log(config: AppConfig) -> AppConfig:
        # Registered after the auth hook and inserted first, so it wraps authentication too:
        # refused requests are logged with their request id like any other.
        config.middleware.insert(0, RequestLogMiddleware())
        return config

    return Litestar(
        route_handlers=[
            HealthController, AuthController, MeController, TokenController, AdminUserController,
            WorkspaceController, CredentialController, AgentController, TaskController, TaskListController, SessionController,
            SessionStreamController, TaskStreamController, UsageController,
            MemberController, WorkspaceCredentialController, AuditController, NodeController,
            ForgeTaskController, ForgeIdentityController, WebhookController, MetricsController, CommentController,
            ImageController, OwnNotificationController, WorkspaceNotificationController,
            *web_route_handlers(),
        ],
        lifespan=[lifespan],
        on_app_init=[jwt_auth.on_app_init, add_csrf, add_request_log],
        dependencies={
            "auth_service": Provide(lambda: auth_service, sync_to_thread=False),
            "sso": Provide(lambda: sso, sync_to_thread=False),
            "workspace_service": Provide(lambda: workspace_service, sync_to_thread=False),
            "member_service": Provide(lambda: member_service, sync_to_thread=False),
            "database": Provide(lambda: database, sync_to_thread=False),
            "docker_engine": Provide(lambda: docker_engine, sync_to_thread=False),
            "credential_service": Provide(lambda: credential_service, sync_to_thread=False),
            "agent_catalog": Provide(lambda: agent_catalog, sync_to_thread=False),
            "image_builds": Provide(lambda: image_builds, sync_to_thread=False),
            "task_service": Provide(lambda: task_service, sync_to_thread=False),
            "comment_service": Provide(lambda: comment_service, sync_to_thread=False),
            "notification_service": Provide(lambda: notification_service, sync_to_thread=False),
            "usage_repo": Provide(lambda: usage_repo, sync_to_thread=False),
            "audit_log": Provide(lambda: audit, sync_to_thread=False),
            "node_repo": Provide(lambda: node_repo, sync_to_thread=False),
            "task_queue": Provide(lambda: queue, sync_to_thread=False),
            "forge_publisher": Provide(lambda: publisher, sync_to_thread=False),
            "forge_hooks": Provide(lambda: hooks, sync_to_thread=False),
            "shown_once": Provide(lambda: shown_once, sync_to_thread=False),
            "disk_floor": Provide(lambda: disk, sync_to_thread=False),
        },
        state=State({"auth_service": auth_service, "sso": sso, "workspace_service": workspace_service,
                     "background": background, "settings": settings, "supervisor": supervisor,
                     "task_service": task_service, "usage_repo": usage_repo, "forge_hooks": hooks,
                     "notification_service": notification_service}),
        exception_handlers={AicodeError: _domain_error, Exception: _unexpected_error},
        template_config=template_config(),
        openapi_config=openapi_config(__version__),
        plugins=[ErrorResponsesPlugin(PUBLIC_PATHS),
                 *([OpenTelemetryPlugin(OpenTelemetryConfig(
                     tracer_provider=tracing.provider, scope_span_details_extractor=route_span_details,
                     exclude=["^/metrics$", "^/static/", "^/healthz$"],
                     exclude_spans=["receive", "send"]))] if tracing.enabled else [])],
        # Inside authentication (see on_app_init): requests are measured by route template, and bad
        # input is refused before any handler runs.
        middleware=[_http_metrics().middleware, RequestInputGuard()],
        before_send=[add_security_headers],
        request_max_body_size=MAX_REQUEST_BODY_BYTES,
        logging_config=None,
        debug=False,
    )
