"""``rfbackup drill``: the monthly restore test, automated.

    choose checks -> for each: restore the newest backup into scratch targets, check,
    measure RTO/RPO -> remove every scratch target -> report (repository drills/, metrics)

Every check runs even when an earlier one failed; the scratch targets are removed whatever
happened (failed check, error, SIGINT/SIGTERM); the report is written even for a failed
drill. An interrupted drill writes no report: it did not finish.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from rfbackup.drill import registry, reports
from rfbackup.drill.context import Context
from rfbackup.drill.model import CheckResult, Drill
from rfbackup.drill.scratch import Scratch
from rfbackup.errors import DrillFailed, Interrupted
from rfbackup.logs import log
from rfbackup.report import Run, RunReport, failed

if TYPE_CHECKING:
    from rfbackup.config import Settings

Deliver = Callable[[RunReport], None]


def run_drill(
    settings: Settings,
    components: list[str] | None = None,
    *,
    report_dir: Path | None = None,
    keep: bool = False,
    sample_rows: int = 100,
    deliver: Deliver | None = None,
) -> Drill:
    checks = registry.select(components)
    repo = settings.open_repository()
    started = time.time()
    drill_id = datetime.fromtimestamp(started, UTC).strftime("%Y%m%d_%H%M%S")
    drill = Drill(drill_id, settings.env.value, repo.url, socket.gethostname(), started)
    scratch = Scratch(keep=keep)
    ctx = Context(settings, repo, drill_id, started, scratch, sample_rows)
    try:
        for check in checks:
            drill.results.append(_one(ctx, check, bool(components), deliver))
    finally:
        scratch.close()
        drill.kept, drill.cleanup_problems = scratch.kept, scratch.problems
    drill.finished = time.time()
    drill.report_keys = reports.store(repo, drill, report_dir)
    return drill


def _one(ctx: Context, check: registry.Check, asked: bool, deliver: Deliver | None) -> CheckResult:
    result = CheckResult(check.component)
    reason = check.skip_reason(ctx)
    if reason is not None:
        result.status = "skipped"
        result.issues.append(reason)
        if asked:  # a component asked for by name must run
            result.fail(f"asked for, but {reason}")
        log.warning("drill %s: skipped (%s)", check.component, reason)
        return result
    log.info("drill %s: starting", check.component)
    run = Run(check.component, ctx.settings.env.value, "drill", _lineage(ctx, check))
    try:
        check.run(ctx, result)
    except (Interrupted, KeyboardInterrupt, SystemExit) as exc:  # the whole drill stops
        result.fail(f"interrupted: {exc or type(exc).__name__}")
        result.finished = time.time()
        _deliver(run, result, deliver)
        raise
    except Exception as exc:  # this component failed; the others still run
        result.fail(f"{type(exc).__name__}: {exc}")
    result.finished = time.time()
    _deliver(run, result, deliver)
    for issue in result.issues:
        log.error("drill %s: %s", check.component, issue)
    log.info(
        "drill %s: %s (RTO %s s, RPO %s s)",
        check.component,
        result.status,
        result.rto_seconds,
        result.rpo_seconds,
    )
    return result


def _lineage(ctx: Context, check: registry.Check) -> str:
    return f"{ctx.settings.env.value}/{check.component}"


def _deliver(run: Run, result: CheckResult, deliver: Deliver | None) -> None:
    report = run.report
    report.finished = result.finished
    report.key = result.backup
    report.sha256 = result.sha256
    if result.rto_seconds is not None:
        report.extra["rto_seconds"] = result.rto_seconds
    if result.rpo_seconds is not None:
        report.extra["rpo_seconds"] = result.rpo_seconds
    if result.status == "failed":
        failed(report, DrillFailed("; ".join(result.issues) or "check failed"))
    if deliver is not None:
        deliver(report)
