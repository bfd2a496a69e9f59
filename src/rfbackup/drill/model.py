"""What a drill found: one :class:`CheckResult` per component, gathered in a :class:`Drill`.

The same shape is written as JSON and as Markdown into the repository under ``drills/``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

Status = Literal["passed", "failed", "skipped"]


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class Finding:
    """One check: a name, whether it held, and the facts behind it."""

    name: str
    ok: bool
    detail: str
    informational: bool = False  # reported, never fails the drill (e.g. counts vs production)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class CheckResult:
    """One component's part of the drill."""

    component: str
    status: Status = "passed"
    backup: str | None = None  # the key of the backup restored
    sha256: str | None = None
    backup_taken_at: str | None = None
    target: str = ""  # the scratch target it was restored into
    rto_seconds: float | None = None  # restore time: verify + load + checks of the restore
    rpo_seconds: float | None = None  # age of the newest restorable point at drill time
    restorable_point: str | None = None  # that point (UTC)
    facts: dict[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    issues: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    finished: float = 0.0

    def check(self, name: str, ok: bool, detail: str) -> bool:
        self.findings.append(Finding(name, ok, detail))
        if not ok:
            self.fail(f"{name}: {detail}")
        return ok

    def note(self, name: str, detail: str) -> None:
        self.findings.append(Finding(name, True, detail, informational=True))

    def fail(self, issue: str) -> None:
        self.status = "failed"
        self.issues.append(issue)

    def to_dict(self) -> dict[str, Any]:
        doc = {k: v for k, v in self.__dict__.items() if k not in ("findings",)}
        doc["started"] = iso(self.started)
        doc["finished"] = iso(self.finished)
        doc["findings"] = [f.to_dict() for f in self.findings]
        return doc


@dataclass
class Drill:
    id: str  # YYYYMMDD_HHMMSS of its start, UTC: the report's name
    environment: str
    repository: str
    host: str
    started: float
    finished: float = 0.0
    results: list[CheckResult] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # scratch targets left by --keep
    cleanup_problems: list[str] = field(default_factory=list)
    report_keys: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        ran = [r for r in self.results if r.status != "skipped"]
        return bool(ran) and all(r.status == "passed" for r in ran) and not self.cleanup_problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "rfbackup-drill/1",
            "id": self.id,
            "outcome": "passed" if self.passed else "failed",
            "environment": self.environment,
            "repository": self.repository,
            "host": self.host,
            "started": iso(self.started),
            "finished": iso(self.finished),
            "duration_seconds": round(max(self.finished - self.started, 0.0), 3),
            "components": [r.to_dict() for r in self.results],
            "kept": self.kept,
            "cleanup_problems": self.cleanup_problems,
        }
