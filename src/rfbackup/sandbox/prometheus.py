"""Throwaway Prometheus, Pushgateway and Alertmanager (Debian's packages) on free ports.

Each server gets its own temporary folder and is killed on exit. Used by the tests and by
anyone who wants to watch the alert rules work on one machine.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rfbackup.sandbox.postgres import free_port

PROMETHEUS = "prometheus"
PUSHGATEWAY = "prometheus-pushgateway"
ALERTMANAGER = "prometheus-alertmanager"
PROMTOOL = "promtool"


def binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/bin:/usr/sbin")
    if found is None:
        raise FileNotFoundError(f"{name} is not installed (scripts/bootstrap.sh installs it)")
    return found


def get(url: str, timeout: float = 2.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        data: bytes = resp.read()
        return data


def get_json(url: str) -> Any:
    return json.loads(get(url))


@dataclass
class Server:
    """One server process on a free port, with its folder and log."""

    name: str
    port: int = field(default_factory=free_port)
    work: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="rfbackup-prom-")))
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, argv: list[str], timeout: float = 30) -> Server:
        log = (self.work / "server.log").open("wb")
        self.proc = subprocess.Popen(
            [binary(self.name), *argv], stdout=log, stderr=subprocess.STDOUT, cwd=self.work
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log()[-2000:]}")
            try:
                get(self.url + "/-/ready", timeout=0.5)
                return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)
        raise TimeoutError(f"{self.name} not ready after {timeout}s: {self.log()[-2000:]}")

    def log(self) -> str:
        return (self.work / "server.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.work, ignore_errors=True)


def pushgateway() -> Server:
    server = Server(PUSHGATEWAY)
    return server.start([f"--web.listen-address={server.address}"])


def alertmanager(webhook_url: str) -> Server:
    server = Server(ALERTMANAGER)
    config = {
        "route": {
            "receiver": "test",
            "group_wait": "0s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [{"name": "test", "webhook_configs": [{"url": webhook_url}]}],
    }
    (server.work / "alertmanager.yml").write_text(json.dumps(config))
    return server.start(
        [
            f"--config.file={server.work / 'alertmanager.yml'}",
            f"--storage.path={server.work / 'data'}",
            f"--web.listen-address={server.address}",
            "--cluster.listen-address=",  # no gossip port: one instance
        ]
    )


def prometheus(
    rule_files: list[Path], scrape: list[str], alertmanager_address: str | None, interval: str
) -> Server:
    server = Server(PROMETHEUS)
    config: dict[str, Any] = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [
            {
                "job_name": "pushgateway",
                "honor_labels": True,  # keep the pushed job/component/environment labels
                "static_configs": [{"targets": scrape}],
            }
        ],
    }
    if alertmanager_address:
        config["alerting"] = {
            "alertmanagers": [{"static_configs": [{"targets": [alertmanager_address]}]}]
        }
    (server.work / "prometheus.yml").write_text(json.dumps(config))
    return server.start(
        [
            f"--config.file={server.work / 'prometheus.yml'}",
            f"--storage.tsdb.path={server.work / 'data'}",
            f"--web.listen-address={server.address}",
        ]
    )
