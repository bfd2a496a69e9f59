"""End to end on real servers: rfbackup pushes to a Pushgateway, Prometheus scrapes it every
second and evaluates our alert rules, Alertmanager delivers to a webhook this test runs.

The rules are the real file with only the `for:` durations shortened."""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest
from conftest import Env, base_env, make_database

from rfbackup.ops.metrics import deliver
from rfbackup.ops.options import MetricsOptions
from rfbackup.report import RunReport
from rfbackup.sandbox import prometheus as prom
from rfbackup.sandbox.postgres import ThrowawayPostgres

RULES = Path(__file__).resolve().parent.parent / "deploy" / "prometheus" / "backup-alerts.yml"
T = TypeVar("T")

pytestmark = pytest.mark.skipif(
    any(shutil.which(b) is None for b in (prom.PROMETHEUS, prom.PUSHGATEWAY, prom.ALERTMANAGER)),
    reason="prometheus, prometheus-pushgateway or prometheus-alertmanager not installed",
)


class Webhook:
    """Alertmanager's receiver: records every notification."""

    def __init__(self) -> None:
        self.notifications: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with outer.lock:
                    outer.notifications.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/alerts"

    def firing(self) -> list[dict[str, str]]:
        with self.lock:
            return [
                a["labels"]
                for n in self.notifications
                for a in n["alerts"]
                if a["status"] == "firing"
            ]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def short_rules(folder: Path) -> Path:
    """The real rules with every `for:` set to 0s (and nothing else changed)."""
    text, count = re.subn(r"(?m)^(\s+)for: \S+$", r"\1for: 0s", RULES.read_text())
    assert count >= 8
    path = folder / "backup-alerts.yml"
    path.write_text(text)
    return path


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 20) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[prom.Server, prom.Server, Webhook]]:
    hook = Webhook()
    servers: list[prom.Server] = []
    try:
        manager = prom.alertmanager(hook.url)
        servers.append(manager)
        gateway = prom.pushgateway()
        servers.append(gateway)
        prometheus = prom.prometheus(
            [short_rules(tmp_path)], [gateway.address], manager.address, interval="1s"
        )
        servers.append(prometheus)
        yield prometheus, gateway, hook
    finally:
        for server in servers:
            server.stop()
        hook.close()


def alerts(prometheus: prom.Server, name: str) -> list[dict[str, Any]]:
    doc = prom.get_json(prometheus.url + "/api/v1/alerts")
    return [
        a
        for a in doc["data"]["alerts"]
        if a["labels"]["alertname"] == name and a["state"] == "firing"
    ]


def query(prometheus: prom.Server, expr: str) -> list[dict[str, Any]]:
    from urllib.parse import quote

    doc = prom.get_json(f"{prometheus.url}/api/v1/query?query={quote(expr)}")
    result: list[dict[str, Any]] = doc["data"]["result"]
    return result


def test_backup_push_scrape_alert_webhook(
    pg: ThrowawayPostgres, tmp_path: Path, stack: tuple[prom.Server, prom.Server, Webhook]
) -> None:
    prometheus, gateway, hook = stack
    dbname = make_database(pg, size=20_000)
    work = tmp_path / "work"
    work.mkdir()
    env = Env(pg, work, dbname, {**base_env(work), **pg.env(dbname)})
    push = {"RFBACKUP_METRICS__PUSHGATEWAY_URL": gateway.url}

    # 1. a real backup pushes; Prometheus scrapes its last success
    done = env.run("backup", "postgres", **push)
    assert done.returncode == 0, done.stderr
    series = wait_for(
        "the scraped success",
        lambda: query(
            prometheus,
            'backup_last_success_timestamp{component="postgres",environment="development"}',
        ),
    )
    assert abs(float(series[0]["value"][1]) - time.time()) < 60

    # 2. a failing backup: BackupFailed fires, and the last success is still there
    bad = env.run("backup", "postgres", PGDATABASE="no_such_db", **push)
    assert bad.returncode == 4
    fired = wait_for("BackupFailed", lambda: alerts(prometheus, "BackupFailed"))
    assert {(a["labels"]["component"], a["labels"]["environment"]) for a in fired} == {
        ("postgres", "development")
    }
    # the very first failure is an increase (the counter was exported at 0 before it)
    wait_for(
        "increase() to see the first failure",
        lambda: query(
            prometheus, 'increase(backup_failures_total{error_class="SourceError"}[5m]) > 0'
        ),
    )
    assert query(prometheus, 'backup_last_success_timestamp{environment="development"}')

    # the dashboard's queries run on this Prometheus, and its main panels have data
    from test_metrics import dashboard_queries

    for expr in dashboard_queries():
        if expr.startswith("label_values("):
            continue
        concrete = expr.replace("$environment", ".*").replace("$component", ".*")
        result = query(prometheus, concrete)  # a PromQL error raises (HTTP 400)
        if any(m in expr for m in ("backup_last_success", "backup_last_size", "failures_total")):
            assert result, concrete

    # 3. a stale success (what a backup 3 days ago pushed): NoRecentBackup reaches the webhook
    three_days_ago = time.time() - 3 * 86400
    stale = RunReport(
        "postgres", "staging", "backup", "staging/postgres/db", three_days_ago, three_days_ago
    )
    deliver(stale, MetricsOptions(pushgateway_url=gateway.url))

    def stale_alert() -> list[dict[str, str]]:
        return [
            labels
            for labels in hook.firing()
            if labels["alertname"] == "NoRecentBackup" and labels.get("environment") == "staging"
        ]

    notified = wait_for("NoRecentBackup at the webhook", stale_alert)
    assert notified[0]["severity"] == "warning"
    assert notified[0]["component"] == "postgres"
    # the fresh development backup is not reported stale
    assert not [
        a
        for a in alerts(prometheus, "NoRecentBackup")
        if a["labels"].get("environment") == "development"
    ]
    assert any(
        labels["alertname"] == "BackupFailed" and labels["environment"] == "development"
        for labels in hook.firing()
    )
