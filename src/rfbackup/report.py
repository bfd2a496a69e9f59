"""The RunReport: one record of one run of one job, the same shape for every component.

Every job (a backup, a WAL batch, a retention run, a replica check) ends in one RunReport,
successful or not. Metrics (``rfbackup.ops.metrics``) and ``--json`` output read this shape.
Today the CLI builds it around each service call (:func:`reporting`); the engine's job runner
will return it directly once it exists.

This module imports only the standard library: ``wal-push`` uses it on PostgreSQL's
archiver path.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

Outcome = Literal["success", "failure"]
# What a run did. ``backup``: stored something recoverable (a dump, a base backup, WAL).
Kind = Literal["backup", "prune", "check", "drill"]


@dataclass
class RunReport:
    component: str  # postgres, postgres-base, wal, redis, artifacts, config
    environment: str
    kind: Kind
    lineage: str  # environment/component/what (database, cluster): what retention groups by
    started: float  # unix seconds
    finished: float
    outcome: Outcome = "success"
    key: str | None = None  # the stored object's key (or name) for a backup
    raw_bytes: int | None = None
    stored_bytes: int | None = None
    sha256: str | None = None
    error_class: str | None = None  # the exception class name, e.g. SourceError
    exit_code: int | None = None
    error_message: str | None = None
    # Facts some components add: WAL (last segment time, lag), replica (missing objects).
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.outcome == "success"

    @property
    def duration_seconds(self) -> float:
        return max(self.finished - self.started, 0.0)

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["started"] = _iso(self.started)
        doc["finished"] = _iso(self.finished)
        doc["duration_seconds"] = round(self.duration_seconds, 3)
        return doc


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


class Run:
    """A run in progress: the CLI fills in what the service returned."""

    def __init__(self, component: str, environment: str, kind: Kind, lineage: str) -> None:
        self.report = RunReport(
            component=component,
            environment=environment,
            kind=kind,
            lineage=lineage,
            started=time.time(),
            finished=0.0,
        )

    def stored(
        self, key: str, raw_bytes: int | None, stored_bytes: int | None, sha256: str | None
    ) -> None:
        self.report.key = key
        self.report.raw_bytes = raw_bytes
        self.report.stored_bytes = stored_bytes
        self.report.sha256 = sha256


def failed(report: RunReport, exc: BaseException) -> None:
    """Record ``exc`` in ``report``: its class name, exit code and message."""
    report.outcome = "failure"
    report.error_class = type(exc).__name__
    code = getattr(exc, "exit_code", None)
    if isinstance(exc, KeyboardInterrupt):
        code = 130
    report.exit_code = code if isinstance(code, int) else 1
    report.error_message = str(exc) or type(exc).__name__


@contextmanager
def reporting(
    component: str,
    environment: str,
    kind: Kind,
    lineage: str,
    deliver: Callable[[RunReport], None],
    failure_is: Callable[[BaseException], bool] = lambda exc: True,
) -> Iterator[Run]:
    """Time the body, build its RunReport (failure included), hand it to ``deliver``.

    The body's exception is re-raised unchanged after delivery; ``failure_is`` can declare
    some exceptions (e.g. a clean ``typer.Exit(0)``) not to be failures.
    """
    run = Run(component, environment, kind, lineage)
    try:
        yield run
    except BaseException as exc:
        run.report.finished = time.time()
        if failure_is(exc):
            failed(run.report, exc)
        deliver(run.report)
        raise
    run.report.finished = time.time()
    deliver(run.report)
