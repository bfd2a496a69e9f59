"""The alert rules pass `promtool check rules`, every alert has at least 8 promtool cases,
the cases pass, and they bite: rules with a broken clause fail them."""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "prometheus" / "backup-alerts.yml"
CASES = sorted((ROOT / "deploy" / "prometheus" / "tests").glob("*.test.yml"))

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")


def promtool(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def alerts() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


def test_rules_are_valid() -> None:
    done = promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    names = {a["alert"] for a in alerts()}
    # the runbook's two, the per-component freshness, WAL, replica and drills
    assert {
        "BackupJobFailed",
        "NoRecentBackup",
        "NoRecentRedisBackup",
        "NoRecentArtifactsBackup",
        "WalArchivingStalled",
        "ReplicaBehind",
        "RestoreDrillOverdue",
        "RestoreDrillFailed",
    } <= names
    runbook = {a["alert"]: a for a in alerts()}
    assert runbook["BackupJobFailed"]["expr"].strip() == (
        'kube_job_status_failed{job_name=~"postgres-backup.*"} > 0'
    )
    assert runbook["BackupJobFailed"]["for"] == "5m"
    assert runbook["NoRecentBackup"]["for"] == "1h"
    assert "86400 * 2" in runbook["NoRecentBackup"]["expr"]


def test_every_alert_has_at_least_eight_cases() -> None:
    counts: Counter[str] = Counter()
    for path in CASES:
        doc = yaml.safe_load(path.read_text())
        for group in doc["tests"]:
            for case in group.get("alert_rule_test", []):
                counts[case["alertname"]] += 1
    names = {a["alert"] for a in alerts()}
    assert set(counts) == names  # no alert without cases, no case for a missing alert
    short = {n: c for n, c in counts.items() if c < 8}
    assert short == {}


def test_promtool_cases_pass() -> None:
    done = promtool("test", "rules", *[str(p) for p in CASES])
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert done.stdout.count("SUCCESS") == len(CASES)


@pytest.mark.parametrize(
    ("case", "old", "new"),
    [
        # NoRecentBackup without its absent() clause misses "no backup ever"
        (
            "no-recent-backup",
            '\n          or\n          absent(backup_last_success_timestamp{component="postgres", '
            'operation="backup"})',
            "",
        ),
        # a threshold of 3 days instead of the runbook's 2
        ("no-recent-backup", "> 86400 * 2)", "> 86400 * 3)"),
        # BackupFailed without the "never succeeded" clause
        (
            "backup-failed",
            "unless max by (component, environment, operation) "
            '(backup_last_success_timestamp_seconds{operation!="drill"})',
            "> 1e12",
        ),
        # repeated failures counted with delta() break on a counter reset
        (
            "backup-failures-repeated",
            "increase(backup_failures_total",
            "delta(backup_failures_total",
        ),
    ],
)
def test_cases_catch_a_broken_rule(tmp_path: Path, case: str, old: str, new: str) -> None:
    text = RULES.read_text()
    assert old in text
    (tmp_path / "prometheus").mkdir()
    (tmp_path / "prometheus" / "backup-alerts.yml").write_text(text.replace(old, new, 1))
    (tmp_path / "prometheus" / "tests").mkdir()
    test_file = tmp_path / "prometheus" / "tests" / f"{case}.test.yml"
    shutil.copy(ROOT / "deploy" / "prometheus" / "tests" / f"{case}.test.yml", test_file)
    assert promtool("check", "rules", str(tmp_path / "prometheus" / "backup-alerts.yml"))
    done = promtool("test", "rules", str(test_file))
    assert done.returncode != 0
    assert "FAILED" in done.stdout + done.stderr
