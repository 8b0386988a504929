"""/metrics: who may read it, what it says after a task, and a real Prometheus scraping it; the alert
rules and the dashboard name only metrics the server really exports."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families

from aicode.app import create_app
from aicode.settings import Settings
from tests.cli_support import LiveServer, free_port, make_account, serve_in_thread
from tests.conftest import ADMIN, login, make_user, wait_for_status
from tests.tasks_support import finished, submit

pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).resolve().parent.parent
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "aicode.json"
TOKEN = "metrics-token-for-tests"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, by (name, sorted labels)."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


def exported_names(text: str) -> set[str]:
    """The series names an exposition offers, counters and histograms with their suffixes."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}.get(family.type, ())
        names.update(family.name + suffix for suffix in suffixes)
        names.update(sample.name for sample in family.samples)
    return names


async def test_metrics_need_the_token_and_count_a_task(task_settings: Settings, source_repo: Path) -> None:
    settings = dataclasses.replace(task_settings, metrics_token=TOKEN)
    async with AsyncTestClient(app=create_app(settings)) as client:
        assert (await client.get("/metrics")).status_code == 401
        assert (await client.get("/metrics", headers={"Authorization": "Bearer wrong"})).status_code == 401
        auth = {"Authorization": f"Bearer {TOKEN}"}
        before = (await client.get("/metrics", headers=auth)).text
        admin = await login(client, *ADMIN)
        alice = await make_user(client, admin, "alice")
        await client.put("/api/me/credentials/anthropic", json={"api_key": "sk-alice"}, headers=alice)
        created = await client.post("/api/workspaces", json={"name": "p", "repo_url": str(source_repo)},
                                    headers=alice)
        workspace = await wait_for_status(client, alice, created.json()["id"])
        task = await submit(client, alice, workspace["id"], "@write a.txt hello")
        assert (await finished(client, alice, task["id"]))["status"] == "succeeded"
        failing = await submit(client, alice, workspace["id"], "@exit 3")
        assert (await finished(client, alice, failing["id"]))["status"] == "failed"

        answer = await client.get("/metrics", headers=auth)
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
        after = answer.text
        for name, labels in (("aicode_tasks_total", {"status": "succeeded"}),
                             ("aicode_tasks_total", {"status": "failed"}),
                             ("aicode_turn_failures_total", {"cause": "agent"}),
                             ("aicode_turn_duration_seconds_count", {}),
                             ("aicode_container_start_seconds_count", {})):
            assert value(after, name, **labels) >= value(before, name, **labels) + 1, (name, labels)
        assert value(after, "aicode_events_total") >= value(before, "aicode_events_total") + 8
        assert value(after, "aicode_tasks_queued") == 0 and value(after, "aicode_tasks_running") == 0
        assert value(after, "aicode_docker_up") == 1 and value(after, "aicode_data_disk_free_bytes") > 0
        # HTTP requests by route template, never by raw path (a task id would make a series per task).
        route = {"app_name": "aicode", "method": "GET", "path": "/api/tasks/{task_id}", "status_code": "200"}
        assert value(after, "aicode_http_requests_total", **route) >= 2
        assert task["id"] not in after


def test_without_a_token_only_this_machine_may_read_metrics(task_settings: Settings) -> None:
    async def remote() -> int:
        async with AsyncTestClient(app=create_app(task_settings)) as client:  # its client is "testclient"
            return (await client.get("/metrics")).status_code

    import asyncio

    assert asyncio.run(remote()) == 403
    with serve_in_thread(task_settings) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        local = http.get("/metrics")
        assert local.status_code == 200 and "aicode_tasks_queued" in local.text


# -- a real Prometheus ----------------------------------------------------------------------------


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Debian's prometheus on 127.0.0.1, scraping what the test writes into its file of targets."""
    binary = shutil.which("prometheus")
    assert binary, "prometheus is not installed (bash .ci/run installs Debian's package)"
    targets = tmp_path / "targets.json"
    targets.write_text("[]")
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    config = tmp_path / "prometheus.yml"
    config.write_text(f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: ["{ALERTS}"]
scrape_configs:
  - job_name: aicode
    authorization: {{type: Bearer, credentials_file: "{token_file}"}}
    file_sd_configs: [{{files: ["{targets}"], refresh_interval: 1s}}]
""")
    port = free_port()
    log = tmp_path / "prometheus.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=output)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"prometheus exited: {log.read_text()}"
            try:
                if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "prometheus did not become ready in 30 s"
            time.sleep(0.2)
        yield url, targets
    finally:
        process.terminate()
        process.wait(timeout=30)


def _query(prometheus_url: str, expr: str) -> float | None:
    answer = httpx.get(f"{prometheus_url}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert answer["status"] == "success", answer
    result = answer["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def _eventually(check: object, timeout: float = 30) -> object:
    deadline = time.monotonic() + timeout
    while True:
        got = check()  # type: ignore[operator]
        if got:
            return got
        assert time.monotonic() < deadline, "the condition did not come true in time"
        time.sleep(0.5)


def test_a_real_prometheus_scrapes_the_server_and_sees_a_task(prometheus: tuple[str, Path],
                                                               task_settings: Settings, source_repo: Path,
                                                               tmp_path: Path) -> None:
    prometheus_url, targets = prometheus
    settings = dataclasses.replace(task_settings, metrics_token=TOKEN)
    with serve_in_thread(settings) as server:
        targets.write_text(json.dumps([{"targets": [server.url.removeprefix("http://")]}]))
        _eventually(lambda: _query(prometheus_url, 'up{job="aicode"}') == 1)
        total = 'sum(aicode_tasks_total{status="succeeded"}) or vector(0)'
        before = _eventually(lambda: _query(prometheus_url, total) is not None and _query(prometheus_url, total))
        _run_a_task(server, source_repo, tmp_path)
        _eventually(lambda: (_query(prometheus_url, total) or 0) >= float(before) + 1)  # type: ignore[arg-type]
        # The rules loaded, and each alert's expression evaluates against real data without error.
        rules = httpx.get(f"{prometheus_url}/api/v1/rules", timeout=10).json()["data"]["groups"][0]["rules"]
        assert {r["name"] for r in rules} >= {"AicodeQueueStuck", "AicodeFailureRate", "AicodeDockerEngineDown",
                                              "AicodeDataDiskLow"}
        assert all(r["health"] in ("ok", "unknown") for r in rules), rules


def _run_a_task(server: LiveServer, source_repo: Path, tmp_path: Path) -> None:
    account = make_account(server, source_repo, tmp_path / "home")
    with server.api(account.token) as api:
        task = api.post(f"/api/workspaces/{account.workspace['id']}/tasks", json={"prompt": "@write p.txt x"}).json()
        deadline = time.monotonic() + 60
        while api.get(f"/api/tasks/{task['id']}").json()["status"] in ("queued", "running"):
            assert time.monotonic() < deadline
            time.sleep(0.2)


# -- the alert rules and the dashboard ------------------------------------------------------------


def _expressions() -> list[str]:
    rules = re.findall(r"^\s+expr: (>\n(?:\s{10}.*\n)+|.*)$", ALERTS.read_text(), flags=re.MULTILINE)
    dashboard = json.loads(DASHBOARD.read_text())
    return rules + [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_promtool_accepts_the_alert_rules() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed (bash .ci/run installs Debian's prometheus)"
    checked = subprocess.run([promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 5 rules found" in checked.stdout


async def test_every_metric_in_the_alerts_and_dashboard_is_one_the_server_exports(task_settings: Settings) -> None:
    settings = dataclasses.replace(task_settings, metrics_token=TOKEN)
    async with AsyncTestClient(app=create_app(settings)) as client:
        await client.get("/healthz")
        exported = exported_names((await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})).text)
    expressions = _expressions()
    assert len(expressions) >= 20
    used = {name for expr in expressions for name in re.findall(r"\baicode_[a-z_]+\b", expr)}
    assert used, "no aicode_* metric found in the expressions"
    assert sorted(used - exported) == []
    for required in ("aicode_tasks_total", "aicode_tasks_running", "aicode_tasks_queued",
                     "aicode_turn_duration_seconds_bucket", "aicode_container_start_seconds_bucket",
                     "aicode_events_total", "aicode_model_tokens_total", "aicode_model_cost_usd_total",
                     "aicode_stream_clients", "aicode_http_request_duration_seconds_bucket"):
        assert required in exported, required
