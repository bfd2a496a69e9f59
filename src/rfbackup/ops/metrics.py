"""Prometheus metrics from RunReports, delivered to a node_exporter textfile and/or a Pushgateway.

Each run updates the series of its own group (component, environment, operation). A short-lived
job cannot keep a counter or "the last success" in memory, so each delivery first reads the
group's previous values back (from the textfile, else from the Pushgateway), applies this run,
and writes the whole group again:

* the textfile is replaced atomically (temporary file in the same folder, fsync, rename);
* the Pushgateway gets ``pushadd`` (HTTP POST), which replaces only the metric names pushed.
  A failed run pushes no ``backup_last_success_timestamp`` of its own, so even when the
  read-back failed, the last success already in the gateway is never erased.

``backup_failures_total`` counts across runs through that read-back. Every error class of
errors.py is exported at 0 from the first run on, so ``increase()`` also sees a first
failure. If the read-back fails, the counter restarts, which ``increase()`` treats as a reset.

Delivery never fails the job: problems are one warning line.
"""

from __future__ import annotations

import os
import sys
import tempfile
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, pushadd_to_gateway
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from rfbackup.report import RunReport

if TYPE_CHECKING:
    from rfbackup.ops.options import MetricsOptions

GROUP_LABELS = ("component", "environment", "operation")

# name -> (type, help). The runbook's ``backup_last_success_timestamp`` lacks the unit suffix
# Prometheus asks for; it is exported under both names.
FAMILIES: dict[str, tuple[str, str]] = {
    "backup_last_success_timestamp": (
        "gauge",
        "Unix time of the last successful run (the runbook's name; same as the _seconds one)",
    ),
    "backup_last_success_timestamp_seconds": ("gauge", "Unix time of the last successful run"),
    "backup_last_attempt_timestamp_seconds": ("gauge", "Unix time the last run started"),
    "backup_last_failure_timestamp_seconds": ("gauge", "Unix time the last failed run ended"),
    "backup_last_duration_seconds": ("gauge", "How long the last run took"),
    "backup_last_size_bytes": ("gauge", "Size of the last backup: kind=stored or raw"),
    "backup_failures_total": ("counter", "Failed runs, by error class"),
    "backup_restore_verified_timestamp": (
        "gauge",
        "Unix time of the last restore drill that verified a backup (same as the _seconds one)",
    ),
    "backup_restore_verified_timestamp_seconds": (
        "gauge",
        "Unix time of the last restore drill that verified a backup",
    ),
    "backup_drill_rto_seconds": ("gauge", "Restore time measured by the last drill"),
    "backup_drill_rpo_seconds": (
        "gauge",
        "Age of the newest restorable point at the last drill",
    ),
    "wal_archive_last_segment_timestamp_seconds": (
        "gauge",
        "Unix time the last WAL segment was archived",
    ),
    "wal_archive_lag_segments": ("gauge", "WAL segments ready but not yet archived"),
    "replica_missing_objects": ("gauge", "Backups missing or different on the replica"),
}
EXPORTED = tuple(FAMILIES)

Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]  # name -> extra labels -> value


def group_of(report: RunReport) -> dict[str, str]:
    return {
        "component": report.component,
        "environment": report.environment,
        "operation": report.kind,
    }


def error_classes() -> list[str]:
    """Every error class a run can end with (errors.py), for the zero-initialised counter."""
    from rfbackup import errors

    found = [
        obj.__name__
        for obj in vars(errors).values()
        if isinstance(obj, type) and issubclass(obj, errors.RfBackupError)
    ]
    return sorted(found)


def apply(previous: Samples, report: RunReport) -> Samples:
    """The group's samples after ``report``: previous values carried, this run's set."""
    state: Samples = {name: dict(series) for name, series in previous.items() if name in FAMILIES}

    def put(name: str, value: float, **labels: str) -> None:
        state.setdefault(name, {})[tuple(sorted(labels.items()))] = float(value)

    put("backup_last_attempt_timestamp_seconds", report.started)
    put("backup_last_duration_seconds", report.duration_seconds)
    failures = state.setdefault("backup_failures_total", {})
    for name in error_classes():  # exported at 0 first, so increase() sees the first failure
        failures.setdefault((("error_class", name),), 0.0)
    if report.succeeded:
        put("backup_last_success_timestamp", report.finished)
        put("backup_last_success_timestamp_seconds", report.finished)
        if report.stored_bytes is not None:
            put("backup_last_size_bytes", report.stored_bytes, kind="stored")
        if report.raw_bytes is not None:
            put("backup_last_size_bytes", report.raw_bytes, kind="raw")
        if report.kind == "drill":
            put("backup_restore_verified_timestamp", report.finished)
            put("backup_restore_verified_timestamp_seconds", report.finished)
        if report.component == "wal" and report.kind == "backup":
            put("wal_archive_last_segment_timestamp_seconds", report.finished)
    else:
        put("backup_last_failure_timestamp_seconds", report.finished)
        key = (("error_class", report.error_class or "Unknown"),)
        failures[key] = failures.get(key, 0.0) + 1
    if "lag_segments" in report.extra:
        put("wal_archive_lag_segments", report.extra["lag_segments"])
    if "rto_seconds" in report.extra:
        put("backup_drill_rto_seconds", report.extra["rto_seconds"])
    if "rpo_seconds" in report.extra:
        put("backup_drill_rpo_seconds", report.extra["rpo_seconds"])
    if "missing_objects" in report.extra:
        put("replica_missing_objects", report.extra["missing_objects"])
    return state


def families(state: Samples, base: dict[str, str]) -> list[Metric]:
    out: list[Metric] = []
    for name, series in state.items():
        kind, doc = FAMILIES[name]
        fam: Metric
        if kind == "counter":
            fam = CounterMetricFamily(name.removesuffix("_total"), doc, labels=None)
        else:
            fam = GaugeMetricFamily(name, doc, labels=None)
        for extra, value in sorted(series.items()):
            labels = {**base, **dict(extra)}
            fam.add_sample(name, labels, value)
        out.append(fam)
    return out


class _Fixed:
    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return self.metrics


def render(state: Samples, base: dict[str, str]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(families(state, base)))
    return generate_latest(registry)


def parse(text: str, group: dict[str, str]) -> Samples:
    """The samples of ``group`` in an exposition text (a textfile or the Pushgateway's page)."""
    state: Samples = {}
    for fam in text_string_to_metric_families(text):
        for sample in fam.samples:
            if sample.name not in FAMILIES:
                continue
            labels = dict(sample.labels)
            if any(labels.get(k) != v for k, v in group.items()):
                continue
            extra = tuple(
                sorted((k, v) for k, v in labels.items() if k not in (*group, "job", "instance"))
            )
            state.setdefault(sample.name, {})[extra] = float(sample.value)
    return state


def textfile_path(folder: Path, report: RunReport) -> Path:
    return folder / f"rfbackup_{report.environment}_{report.component}_{report.kind}.prom"


def write_textfile(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically: node_exporter never reads half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".rfbackup-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # node_exporter runs as another user; metrics are not secret
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_back(options: MetricsOptions, report: RunReport) -> Samples:
    group = group_of(report)
    if options.textfile_dir is not None:
        try:
            return parse(textfile_path(options.textfile_dir, report).read_text(), group)
        except FileNotFoundError:
            pass
    if options.pushgateway_url:
        url = options.pushgateway_url.rstrip("/") + "/metrics"
        with urllib.request.urlopen(url, timeout=options.timeout_seconds) as resp:
            return parse(resp.read().decode(), {**group, "job": options.pushgateway_job})
    return {}


def deliver(report: RunReport, options: MetricsOptions) -> None:
    """Write ``report``'s metrics wherever configured. Never raises: warns instead."""
    try:
        previous = read_back(options, report)
    except Exception as exc:
        _warn(f"cannot read the previous metrics back ({exc}); counters restart")
        previous = {}
    state = apply(previous, report)
    group = group_of(report)
    if options.textfile_dir is not None:
        try:
            write_textfile(textfile_path(options.textfile_dir, report), render(state, group))
        except Exception as exc:
            _warn(f"cannot write the metrics file in {options.textfile_dir}: {exc}")
    if options.pushgateway_url:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Fixed(families(state, {})))
        try:
            pushadd_to_gateway(
                options.pushgateway_url,
                job=options.pushgateway_job,
                registry=registry,
                grouping_key=group,
                timeout=options.timeout_seconds,
            )
        except Exception as exc:
            _warn(f"cannot push metrics to {options.pushgateway_url}: {exc}")


def _warn(message: str) -> None:
    from rfbackup.logs import is_set_up, log

    if is_set_up():
        log.warning("metrics: %s", message)
    else:
        print(f"rfbackup: warning: metrics: {message}", file=sys.stderr)
