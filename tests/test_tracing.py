"""Traces: with OTEL_EXPORTER_OTLP_ENDPOINT set, requests and each turn's phases arrive as spans at an
OTLP/HTTP receiver, and the turn's log lines carry its trace id; without it, nothing is exported."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from aicode.app import create_app
from aicode.settings import Settings
from tests.conftest import ADMIN, login, make_user, wait_for_status
from tests.tasks_support import finished, submit

pytestmark = pytest.mark.timeout(120)


class _Receiver(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.spans: list[dict[str, Any]] = []
        self.paths: list[str] = []


class _Handler(BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.paths.append(self.path)
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource in request.resource_spans:
            service = next((a.value.string_value for a in resource.resource.attributes if a.key == "service.name"), "")
            for scope in resource.scope_spans:
                for span in scope.spans:
                    self.server.spans.append({
                        "name": span.name, "trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(),
                        "parent": span.parent_span_id.hex(), "service": service,
                        "attributes": {a.key: a.value.string_value or a.value.int_value for a in span.attributes}})
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    server = _Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


async def _run_a_task(client: AsyncTestClient, source_repo: Path) -> str:
    admin = await login(client, *ADMIN)
    alice = await make_user(client, admin, "alice")
    stored = await client.put("/api/me/credentials/anthropic", json={"api_key": "sk-alice-key"}, headers=alice)
    assert stored.status_code == 204, stored.text
    created = await client.post("/api/workspaces", json={"name": "p", "repo_url": str(source_repo)}, headers=alice)
    ws = await wait_for_status(client, alice, created.json()["id"])
    task = await submit(client, alice, ws["id"], "@write t.txt traced")
    assert (await finished(client, alice, task["id"]))["status"] == "succeeded"
    return str(task["id"])


async def test_turn_phases_and_requests_are_exported_over_otlp(
        task_settings: Settings, source_repo: Path, receiver: _Receiver, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{receiver.server_address[1]}")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "aicode-under-test")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    async with AsyncTestClient(app=create_app(task_settings)) as client:
        task_id = await _run_a_task(client, source_repo)
    # The app's shutdown flushed what was buffered.
    assert receiver.paths and set(receiver.paths) == {"/v1/traces"}
    turn = next(s for s in receiver.spans if s["name"] == "turn" and s["attributes"].get("aicode.task_id") == task_id)
    assert turn["service"] == "aicode-under-test" and turn["attributes"]["aicode.status"] == "succeeded"
    phases = {s["name"] for s in receiver.spans if s["trace_id"] == turn["trace_id"] and s["parent"] == turn["span_id"]}
    assert {"checkout", "checkout.base", "container.start", "agent.run", "commit", "store"} <= phases, phases
    requests = {s["name"] for s in receiver.spans}
    assert {"POST /api/workspaces/{workspace_id}/tasks", "GET /api/tasks/{task_id}"} <= requests, requests
    assert not any(task_id in name for name in requests)
    # structlog hands each line's fields to the log record: the turn's lines carry its trace id.
    logged = [r.msg for r in caplog.records if isinstance(r.msg, dict)]
    finished_line = next(e for e in logged if e.get("event") == "task.turn_finished" and e.get("task_id") == task_id)
    assert finished_line["trace_id"] == turn["trace_id"]


async def test_without_otel_variables_nothing_is_exported(task_settings: Settings, source_repo: Path,
                                                          receiver: _Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    async with AsyncTestClient(app=create_app(task_settings)) as client:
        await _run_a_task(client, source_repo)
    assert receiver.paths == [] and receiver.spans == []
