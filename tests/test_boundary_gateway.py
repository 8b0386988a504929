"""The gateway listener as seen from inside a task container: only the model API, only with the
running turn's token, and each token only with its own turn's credential."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aicode.settings import Settings
from tests.conftest import ADMIN, login, make_user, wait_for_status
from tests.fakes.mock_anthropic import MockAnthropic, reply, text
from tests.tasks_support import events, finished, of_type, submit, submit_follow_up

pytestmark = pytest.mark.timeout(120)

# Calls the gateway from inside the container: `call(method, path, token, body)` -> HTTP status.
_GATEWAY_CLIENT = """\
import json, os, urllib.error, urllib.request
BASE = os.environ["ANTHROPIC_BASE_URL"]
TOKEN = os.environ["ANTHROPIC_API_KEY"]
def call(method, path, token, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(BASE + path, data=data, method=method,
                                     headers={"x-api-key": token, "content-type": "application/json",
                                              "anthropic-version": "2023-06-01"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status
    except urllib.error.HTTPError as failed:
        return failed.code
def message(marker):
    return {"model": "claude-sonnet-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": marker}]}
"""


def python_in_container(script: str, path: str = "/tmp/probe.py") -> str:
    """Fake-agent directives that write `script` into the container and run it with python3."""
    escaped = script.replace("\\", "\\\\").replace("\n", "\\n")
    return f"@write {path} {escaped}\n@bash python3 {path}"


def probe_output(evs: list[dict]) -> list[str]:
    """The lines the last Bash call printed."""
    return of_type(evs, "tool.result")[-1]["data"]["output"].splitlines()


@pytest.fixture
async def mock() -> AsyncIterator[MockAnthropic]:
    async with MockAnthropic() as server:
        yield server


@pytest.fixture
def task_settings(task_settings: Settings, mock: MockAnthropic) -> Settings:
    """Tasks on the gateway network, the gateway forwarding to the mock."""
    return dataclasses.replace(task_settings, workspace_network="gateway", anthropic_upstream=mock.url)


async def test_the_gateway_listener_serves_only_the_model_api(task_app, workspace) -> None:
    ws, alice = workspace
    script = _GATEWAY_CLIENT + """\
for path in ("/api/me", "/healthz", "/", "/login", "/schema"):
    print("GET", path, call("GET", path, TOKEN))
print("POST /v1/messages", call("POST", "/v1/messages", "aicode-turn-not-a-real-token", message("hi")))
"""
    task = await finished(task_app, alice, (await submit(task_app, alice, ws["id"], python_in_container(script)))["id"])
    assert task["status"] == "succeeded", task
    assert probe_output(await events(task_app, alice, task["id"])) == [
        "GET /api/me 404", "GET /healthz 404", "GET / 404", "GET /login 404", "GET /schema 404",
        "POST /v1/messages 401",
    ]


async def test_the_token_of_an_ended_turn_is_refused(task_app, workspace, mock: MockAnthropic) -> None:
    ws, alice = workspace
    first = "@bash printf %s \"$ANTHROPIC_API_KEY\" > /workspace/turn-1-token"
    task = await finished(task_app, alice, (await submit(task_app, alice, ws["id"], first))["id"])
    assert task["status"] == "succeeded", task
    script = _GATEWAY_CLIENT + """\
old = open("/workspace/turn-1-token").read()
print("different tokens", old != TOKEN and old.startswith("aicode-turn-"))
print("old token", call("POST", "/v1/messages", old, message("old")))
print("this turn's token", call("POST", "/v1/messages", TOKEN, message("new")))
"""
    followed = await submit_follow_up(task_app, alice, task["id"], python_in_container(script))
    assert followed["status"] == "succeeded", followed
    assert probe_output(await events(task_app, alice, task["id"])) == [
        "different tokens True", "old token 401", "this turn's token 200"]
    assert [r["messages"][0]["content"] for r in mock.requests] == ["new"]


async def test_each_running_turns_token_reaches_upstream_with_its_own_users_credential(
    task_app, workspace, mock: MockAnthropic, source_repo: Path
) -> None:
    ws, alice = workspace
    admin = await login(task_app, *ADMIN)
    bob = await make_user(task_app, admin, "bob")
    stored = await task_app.put("/api/me/credentials/anthropic", json={"api_key": "sk-test-bob-key"}, headers=bob)
    assert stored.status_code == 204, stored.text
    created = await task_app.post("/api/workspaces", json={"name": "bobs", "repo_url": str(source_repo)}, headers=bob)
    bobs = await wait_for_status(task_app, bob, created.json()["id"])

    async def answer_once_both_are_waiting(body: dict) -> object:
        # Neither call is answered before the other has arrived: both turns are running, both tokens live.
        await mock.wait_for_requests(2, timeout=60)
        return reply(text("ok"))

    mock.responder = answer_once_both_are_waiting
    probe = _GATEWAY_CLIENT + 'print("status", call("POST", "/v1/messages", TOKEN, message("MARKER")))\n'
    tasks = []
    for name, headers, workspace_id in (("alice", alice, ws["id"]), ("bob", bob, bobs["id"])):
        prompt = python_in_container(probe.replace("MARKER", name))
        tasks.append((headers, await submit(task_app, headers, workspace_id, prompt)))
    for headers, task in tasks:
        task = await finished(task_app, headers, task["id"], timeout=90)
        assert task["status"] == "succeeded", task
        assert probe_output(await events(task_app, headers, task["id"])) == ["status 200"]
    keys = {body["messages"][0]["content"]: {k.lower(): v for k, v in headers.items()}["x-api-key"]
            for body, headers in zip(mock.requests, mock.request_headers, strict=True)}
    assert keys == {"alice": "sk-test-alice-key", "bob": "sk-test-bob-key"}
