"""``rfbackup drill``: the monthly restore test (see rfbackup.drill)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rfbackup.cli.common import EnvOption, JsonOption, RepoOption, deliver_report, print_json
from rfbackup.cli.common import settings as load_settings


def drill(
    component: Annotated[
        list[str] | None,
        typer.Option(
            "--component",
            "-c",
            metavar="NAME",
            help="Only this component (repeatable): postgres, pitr, config, any other installed.",
            show_default="every component with a backup",
        ),
    ] = None,
    report_dir: Annotated[
        Path | None,
        typer.Option(
            "--report-dir",
            metavar="DIR",
            help="Also write the JSON and Markdown report into this folder.",
            show_default=False,
        ),
    ] = None,
    sample: Annotated[
        int,
        typer.Option("--sample", min=0, help="Rows per table compared with production."),
    ] = 100,
    keep: Annotated[
        bool,
        typer.Option("--keep", help="Leave the scratch databases and clusters for inspection."),
    ] = False,
    env: EnvOption = None,
    repo: RepoOption = None,
    as_json: JsonOption = False,
) -> None:
    """Restore the newest backups into scratch targets, check them, measure RTO and RPO.

    Nothing is written to production: each backup is restored into a scratch database
    (rfbackup_drill_ID) or a scratch cluster on a free port, checked against its manifest,
    compared with production (row counts, and sampled rows unchanged since the backup), then
    removed, even on failure or interruption. The report goes into the repository under
    drills/. Exits 12 when any check fails.
    """
    from rfbackup.drill.runner import run_drill
    from rfbackup.errors import DrillFailed

    s = load_settings(env, repo)
    result = run_drill(
        s,
        component,
        report_dir=report_dir,
        keep=keep,
        sample_rows=sample,
        deliver=lambda report: deliver_report(s, report),
    )
    if as_json:
        print_json({**result.to_dict(), "reports": result.report_keys})
    else:
        for r in result.results:
            rto = "-" if r.rto_seconds is None else f"{r.rto_seconds:.1f}s"
            rpo = "-" if r.rpo_seconds is None else f"{r.rpo_seconds:.0f}s"
            typer.echo(f"{r.component}: {r.status} (RTO {rto}, RPO {rpo}) {r.backup or ''}")
            for issue in r.issues:
                typer.echo(f"  - {issue}")
        for key in result.report_keys:
            typer.echo(f"report: {key}", err=True)
    if not result.passed:
        failed = [r.component for r in result.results if r.status == "failed"]
        raise DrillFailed(
            "drill failed: "
            + (", ".join(failed) if failed else "nothing was checked")
            + ("" if not result.cleanup_problems else "; clean-up incomplete")
        )
