"""schemathesis against the app in-process, as a member and as an admin: no answer is a 5xx, and
every status is one the OpenAPI document lists for that operation.

schemathesis 4 drives the app over ASGI (`schemathesis.openapi.from_asgi`) and runs it like the
CLI's `schemathesis run` (`schemathesis.engine`): explicit examples, the coverage phase (boundary
and invalid values, unexpected methods) and a bounded fuzzing phase, with a fixed seed.

Left out of the run, because they would not stay in-process or would end the run early:
- POST /api/workspaces: it clones the generated `repo_url` in the background, i.e. it would reach
  out to arbitrary hosts (tests talk only to 127.0.0.1). tests/test_workspaces.py covers it.
- POST /api/auth/logout: it revokes the credential the run itself uses; every later answer would be 401.
Task submission stays in: the run's workspace is an empty repository, so no task can start (409/400).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from litestar import Litestar
from schemathesis.engine import Status, events, from_schema
from schemathesis.python import asgi

from aicode.app import create_app
from aicode.settings import Settings
from tests.conftest import ADMIN, git

# serial: pure CPU (~30 s alone), so it gains nothing beside other tests, and starved by them it overran
# its time limit.
pytestmark = [pytest.mark.timeout(240), pytest.mark.serial]

EXAMPLES_PER_OPERATION = 5
# The methods the coverage phase also tries on every path, beside the documented ones.
UNEXPECTED_METHODS = ["get", "put", "post", "delete", "patch", "options", "trace"]
CONFIG: dict[str, Any] = {
    "seed": 20240229,
    "cache": {"enabled": False},
    "workers": 1,
    "generation": {"max-examples": EXAMPLES_PER_OPERATION, "mode": "all", "allow-x00": True, "database": ":memory:"},
    "checks": {"enabled": False, "not_a_server_error": {"enabled": True}, "status_code_conformance": {"enabled": True}},
    "phases": {"stateful": {"enabled": False}, "coverage": {"unexpected-methods": UNEXPECTED_METHODS}},
}


@pytest.fixture
def app(settings: Settings) -> Iterator[Litestar]:
    """The app, started by schemathesis on its own event loop and stopped when the test ends."""
    app = create_app(settings)
    try:
        yield app
    finally:
        asgi.shutdown_lifespans()


def _bearer(client: asgi.ASGIClient, username: str, password: str) -> dict[str, str]:
    response = client.post("/api/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _prepare(app: Litestar, repos_root: Path) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """Admin and member (alice) credentials, and the path parameters to use: a workspace of an empty
    repository that alice may view, and alice as the user to edit (an admin who changed their own
    password would end their session, and every later answer of the run would be a 401)."""
    empty = repos_root / "empty"
    empty.mkdir()
    git(empty, "init", "-q", "-b", "trunk")
    with asgi.get_client(app) as client:
        admin = _bearer(client, *ADMIN)
        created = client.post("/api/admin/users", json={"username": "alice", "password": "alice-password"},
                              headers=admin)
        assert created.status_code == 201, created.text
        workspace = client.post("/api/workspaces", json={"name": "empty", "repo_url": str(empty)}, headers=admin)
        assert workspace.status_code == 201, workspace.text
        workspace_id = workspace.json()["id"]
        deadline = time.monotonic() + 20
        while client.get(f"/api/workspaces/{workspace_id}", headers=admin).json()["status"] == "cloning":
            assert time.monotonic() < deadline, "the empty workspace stayed cloning"
            time.sleep(0.05)
        viewer = client.put(f"/api/workspaces/{workspace_id}/members/alice", json={"role": "viewer"}, headers=admin)
        assert viewer.status_code == 200, viewer.text
        parameters = {"workspace_id": workspace_id, "user_id": created.json()["id"]}
        return admin, _bearer(client, "alice", "alice-password"), parameters


class RunReport:
    """What one schemathesis run saw: failed checks, engine errors, and the statuses it got."""

    def __init__(self) -> None:
        self.failures: list[str] = []
        self.statuses: Counter[int] = Counter()
        self.operations: set[str] = set()

    def record(self, event: events.EngineEvent) -> None:
        if isinstance(event, events.NonFatalError):
            self.failures.append(f"error in {event.label}: {event.info.title}: {event.info.message}")
        elif isinstance(event, events.FatalError):
            self.failures.append(f"fatal error: {event.exception!r}")
        recorder = getattr(event, "recorder", None)
        if recorder is None:
            return
        for interaction in recorder.interactions.values():
            if interaction.response is not None:
                self.statuses[interaction.response.status_code] += 1
                self.operations.add(recorder.label)
        if getattr(event, "status", None) != Status.FAILURE:
            return
        for case_id, checks in recorder.checks.items():
            for check in checks:
                if check.status == Status.FAILURE and check.failure_info is not None:
                    response = recorder.find_response(case_id=case_id)
                    status = response.status_code if response is not None else "no answer"
                    self.failures.append(f"{check.name}: {recorder.label} answered {status}: "
                                         f"{check.failure_info.failure.title}\n    {check.failure_info.code_sample}")


def _run(app: Litestar, headers: dict[str, str], parameters: dict[str, str]) -> RunReport:
    config = schemathesis.Config.from_dict({**CONFIG, "headers": headers, "parameters": parameters})
    schema = schemathesis.openapi.from_asgi("/schema/openapi.json", app, config=config)
    schema = schema.exclude(method="POST", path="/api/workspaces").exclude(method="POST", path="/api/auth/logout")
    # A stream that lasts until the client leaves: each call would wait out the request timeout. Its answers
    # are tested in tests/test_browser_first_run.py and the authorization matrix.
    schema = schema.exclude(method="GET", path="/api/tasks/changes")
    report = RunReport()
    for event in from_schema(schema).execute():
        report.record(event)
    return report


def test_no_operation_answers_a_5xx_or_an_undocumented_status(app: Litestar, repos_root: Path) -> None:
    admin, member, parameters = _prepare(app, repos_root)
    # The member runs first: the admin's run may delete the workspace or change the member.
    for role, headers in (("member", member), ("admin", admin)):
        started = time.monotonic()
        report = _run(app, headers, parameters)
        print(f"schemathesis as {role}: {len(report.operations)} operations, "
              f"{sum(report.statuses.values())} requests in {time.monotonic() - started:.1f} s, "
              f"statuses {dict(sorted(report.statuses.items()))}")
        assert report.failures == [], f"as {role}:\n" + "\n".join(report.failures)
        # A run that only ever got refused would prove nothing: it got answers, and its credential held.
        assert sum(count for status, count in report.statuses.items() if status < 300) >= 20, report.statuses
        assert report.statuses[401] * 5 < sum(report.statuses.values()), report.statuses
        assert len(report.operations) >= 20, sorted(report.operations)
