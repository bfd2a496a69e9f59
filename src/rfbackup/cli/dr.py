"""``rfbackup dr PLAYBOOK``: the runbook's disaster-recovery scenarios, one command each."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from rfbackup.cli.common import EnvOption, JsonOption, confirmer, print_json, settings

app = typer.Typer(
    help="Disaster-recovery playbooks: each step audited in the repository, resumable.",
    no_args_is_help=True,
)

YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Print every step with its exact call; do nothing.")
]
ResumeOption = Annotated[
    bool,
    typer.Option(
        "--resume", help="Continue the last unfinished run: skip its done steps, retry the failed."
    ),
]


def _play(
    name: str,
    steps: list[Any],
    options: dict[str, Any],
    question: str,
    env: str | None,
    yes: bool,
    dry_run: bool,
    resume: bool,
    as_json: bool,
    manual: list[str],
) -> None:
    from rfbackup.dr import playbook

    s = settings(env)
    target = s.postgres_target()
    ctx = playbook.Context(s, options)
    if dry_run:
        plan = playbook.describe(steps, ctx)
        if as_json:
            print_json({"playbook": name, "dry_run": True, "steps": plan, "manual": manual})
            return
        for i, step in enumerate(plan, 1):
            typer.echo(f"{i}. {step['title']}\n   {step['call']}")
            if step["undo"]:
                typer.echo(f"   undo: {step['undo']}")
        return
    subject = {"environment": s.env.value, "database": target.dbname or "", "server": target.server}
    if not confirmer(yes)(
        f"{question} Environment: {s.env.value}, database {target.dbname!r} on {target.server}. "
        "Go ahead?"
    ):
        _abort()
    outcome = playbook.run(
        name, steps, ctx, subject, resume, announce=(lambda line: None) if as_json else _echo
    )
    outcome.manual = manual
    if as_json:
        print_json(outcome.to_dict())
        return
    typer.echo(f"{name}: done (run {outcome.run_id}). Left for you:")
    for line in manual:
        typer.echo(f"  - {line}")


def _echo(line: str) -> None:
    typer.echo(line, err=True)


def _abort() -> None:
    from rfbackup.errors import Aborted

    raise Aborted("nothing was done")


@app.command("corruption")
def corruption(
    backup: Annotated[
        str | None,
        typer.Option(
            "--backup", metavar="NAME", help="Restore this backup.", show_default="the newest good"
        ),
    ] = None,
    yes: YesOption = False,
    dry_run: DryRunOption = False,
    resume: ResumeOption = False,
    env: EnvOption = None,
    as_json: JsonOption = False,
) -> None:
    """Scenario 1, database corruption: STANDBY, restore the last known good backup, LIVE.

    The damaged database is kept as DB_pre_restore_STAMP. Every step is written to the
    repository's audit log (dr-audit/).
    """
    from rfbackup.dr import corruption as playbook

    _play(
        "corruption",
        playbook.steps(),
        {"backup": backup},
        "This puts the application in STANDBY and REPLACES the database with its last good backup.",
        env,
        yes,
        dry_run,
        resume,
        as_json,
        playbook.MANUAL,
    )


@app.command("undelete")
def undelete(
    table: Annotated[
        list[str],
        typer.Option(
            "--table", "-t", metavar="SCHEMA.TABLE", help="A table to recover (repeatable)."
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", metavar="DIR", help="Where the exported rows are written.")
    ] = Path("recovered"),
    time: Annotated[
        str | None,
        typer.Option(
            "--time", metavar="TIME", help="A time before the deletion (ISO 8601 with a zone)."
        ),
    ] = None,
    before_delete: Annotated[
        bool,
        typer.Option(
            "--before-delete",
            help="Instead of --time: just before the DELETE on the first --table, found in the "
            "archived WAL (refused when there is more than one).",
        ),
    ] = False,
    since: Annotated[
        str | None,
        typer.Option("--since", metavar="TIME", help="With --before-delete: look from here."),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="sql or csv.")] = "sql",
    merge: Annotated[
        bool,
        typer.Option(
            "--merge", help="Insert the missing rows into production, in one transaction."
        ),
    ] = False,
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Also replace rows production holds differently."),
    ] = False,
    yes: YesOption = False,
    dry_run: DryRunOption = False,
    resume: ResumeOption = False,
    env: EnvOption = None,
    as_json: JsonOption = False,
) -> None:
    """Scenario 2, accidental deletion: STANDBY, recover a side cluster to --time, export
    the rows production lacks, optionally merge them, LIVE.

    Rows production still has are never changed unless --overwrite.
    """
    from rfbackup.dr import undelete as playbook
    from rfbackup.errors import ConfigError
    from rfbackup.pitr.recover import parse_time

    if fmt not in ("sql", "csv"):
        raise ConfigError(f"--format must be sql or csv, not {fmt!r}")
    if (time is None) == (not before_delete):
        raise ConfigError("give either --time or --before-delete")
    for value in (time, since):
        if value is not None:
            parse_time(value)
    if merge and fmt != "sql":
        raise ConfigError("--merge works from the SQL export: use --format sql")
    _play(
        "undelete",
        playbook.steps(),
        {
            "time": time,
            "since": since,
            "tables": table,
            "out": str(out),
            "format": fmt,
            "merge": merge,
            "overwrite": overwrite,
        },
        f"This puts the application in STANDBY and recovers {', '.join(table)} as of "
        + (time or "just before the DELETE")
        + (" and MERGES the missing rows into the database." if merge else "."),
        env,
        yes,
        dry_run,
        resume,
        as_json,
        playbook.MANUAL,
    )


@app.command("rebuild")
def rebuild(
    config_dest: Annotated[
        Path,
        typer.Option(
            "--config-dest", metavar="DIR", help="A new folder for the configuration repository."
        ),
    ] = Path("researchflow-config"),
    yes: YesOption = False,
    dry_run: DryRunOption = False,
    resume: ResumeOption = False,
    env: EnvOption = None,
    as_json: JsonOption = False,
) -> None:
    """Scenario 3, complete loss: from the repository alone, restore the configuration, then
    PostgreSQL onto a fresh server, run health checks, and list what is left (DNS...).
    """
    from rfbackup.dr import rebuild as playbook

    _play(
        "rebuild",
        playbook.steps(),
        {"config_dest": str(config_dest)},
        "This restores the configuration and the newest PostgreSQL backup onto a fresh server.",
        env,
        yes,
        dry_run,
        resume,
        as_json,
        playbook.MANUAL,
    )
