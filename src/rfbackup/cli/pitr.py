"""``rfbackup pitr``: point-in-time recovery (restore, setup, list, prune, find, start, stop)."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rfbackup.cli import pitr_copy
from rfbackup.cli.common import EnvOption, JsonOption, RepoOption, print_json, reported, settings
from rfbackup.errors import ConfigError, StorageError
from rfbackup.limits import MAX_DAYS

if TYPE_CHECKING:
    from rfbackup.pitr.retention import PitrPlan

app = typer.Typer(
    help="Point-in-time recovery from a base backup and the WAL archive.",
    no_args_is_help=True,
)
TARGETS = "Recovery target (give exactly one)"


@app.command("restore")
def restore(
    target_time: Annotated[
        str | None,
        typer.Option(
            "--target-time",
            metavar="TIME",
            help="Recover to this moment. A time zone is required: 2026-11-25T10:15:00Z (UTC) "
            "or 2026-11-25T11:15:00+01:00.",
            rich_help_panel=TARGETS,
        ),
    ] = None,
    target_lsn: Annotated[
        str | None,
        typer.Option(
            "--target-lsn",
            metavar="LSN",
            help="Recover to this LSN, e.g. 0/3000060.",
            rich_help_panel=TARGETS,
        ),
    ] = None,
    target_name: Annotated[
        str | None,
        typer.Option(
            "--target-name",
            metavar="NAME",
            help="Recover to a restore point made with pg_create_restore_point(NAME).",
            rich_help_panel=TARGETS,
        ),
    ] = None,
    latest: Annotated[
        bool,
        typer.Option(
            "--latest",
            help="Recover to the end of the archived WAL (replays everything, including an "
            "accidental DELETE).",
            rich_help_panel=TARGETS,
        ),
    ] = False,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            metavar="DIR",
            help="Where to restore: an empty or new directory. Required.",
        ),
    ] = None,
    backup: Annotated[
        str | None,
        typer.Option(
            "--backup",
            metavar="NAME",
            help="Base backup to start from. Default: the newest one before the target.",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Move a non-empty --data-dir aside (it is never deleted)."),
    ] = False,
    start: Annotated[
        bool,
        typer.Option(
            "--start", help="Start the server, wait for promotion, and report where it stopped."
        ),
    ] = False,
    port: Annotated[
        int | None,
        typer.Option("--port", help="Port of the recovered server (with --start).", min=1),
    ] = None,
    archive: Annotated[
        bool,
        typer.Option(
            "--archive/--no-archive",
            help="Keep WAL archiving on in the recovered server. Off by default, so a side copy "
            "does not add a timeline to the archive.",
        ),
    ] = False,
    owner: Annotated[
        str | None,
        typer.Option(
            "--owner",
            metavar="USER",
            help="User owning the data directory. Default when run as root: postgres.",
        ),
    ] = None,
    no_verify: Annotated[
        bool,
        typer.Option(
            "--no-verify",
            help="Skip checking the restored files against backup_manifest (sha256 is checked).",
        ),
    ] = False,
    allow_unverified: Annotated[
        bool,
        typer.Option(
            "--allow-unverified",
            help="Use a base backup whose manifest is unsigned or not signed by a trusted key.",
        ),
    ] = False,
    env: EnvOption = None,
    repo: RepoOption = None,
    as_json: JsonOption = False,
) -> None:
    """Restore a base backup into --data-dir and recover it to a target.

    The live server is not touched: the copy runs beside it (use --port). Stop it with
    `rfbackup pitr stop DIR`.

    \b
    Example:
      rfbackup pitr restore --target-time 2026-11-25T10:15:00Z \\
          --data-dir /srv/pg-recovered --start --port 5433
    """
    from rfbackup.pitr.recover import Request, Target, pitr

    targets = [
        ("time", target_time),
        ("lsn", target_lsn),
        ("name", target_name),
        ("latest", "latest" if latest else None),
    ]
    chosen = [(k, v) for k, v in targets if v is not None]
    if len(chosen) != 1:
        raise ConfigError(
            "give exactly one of --target-time, --target-lsn, --target-name, --latest"
        )
    if data_dir is None:
        raise ConfigError("--data-dir is required: an empty directory to restore into")
    kind, value = chosen[0]
    target = Target(kind, "" if kind == "latest" else value)
    if kind == "time":
        _ = target.time  # a bad time fails here, before anything is read
    if kind == "lsn":
        try:
            _ = target.lsn
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    request = Request(
        target=target,
        data_dir=data_dir,
        backup=backup,
        force=force,
        start=start,
        port=port,
        archive=archive,
        owner=owner,
        verify=not no_verify,
        allow_unverified=allow_unverified,
    )
    outcome = pitr(settings(env, repo), request)
    if as_json:
        print_json(outcome.to_dict())
        return
    typer.echo(f"restored {outcome.backup} into {outcome.data_dir} ({outcome.files} files)")
    if outcome.moved_aside:
        typer.echo(f"the previous contents are in {outcome.moved_aside}")
    if outcome.promoted:
        typer.echo(f"recovered to {outcome.target} and promoted (timeline {outcome.timeline})")
        typer.echo(f"  stopped:          {outcome.stopped_at or 'at the end of the WAL'}")
        typer.echo(f"  last transaction: {outcome.last_transaction or 'unknown'}")
        typer.echo(f"  server log:       {outcome.log_file}")
    else:
        typer.echo(
            f"ready: start it with `rfbackup pitr start {outcome.data_dir}`; it recovers to "
            f"{outcome.target}, then promotes"
        )
    for note in outcome.notes:
        typer.echo(f"note: {note}", err=True)


@app.command("setup")
def setup(
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            metavar="DIR",
            help="Write the settings into DIR/postgresql.auto.conf (the server's data directory).",
        ),
    ] = None,
    fix_permissions: Annotated[
        bool,
        typer.Option(
            "--fix-permissions",
            help="Run the chown/chmod commands that let the server's user archive (as root).",
        ),
    ] = False,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="After the restart: switch to a new WAL segment on the live server and wait "
            "until it is in the repository. Writes nothing.",
        ),
    ] = False,
    wait: Annotated[
        int, typer.Option("--wait", min=1, help="Seconds --check waits for the segment.")
    ] = 60,
    env: EnvOption = None,
    repo: RepoOption = None,
    as_json: JsonOption = False,
) -> None:
    """Turn on WAL archiving with rfbackup, after checking the server's user can run it.

    Prints (or writes with --data-dir) wal_level, archive_mode, archive_command (rfbackup
    wal-push) and archive_timeout. First it checks, as the server's OS user (the data
    directory's owner, else postgres), that it can run rfbackup, read the config and
    recipients files, and write the repository's wal/ folder; it prints the exact commands
    that fix what is missing, or runs them with --fix-permissions. Nothing is written while a
    check fails. PostgreSQL needs a restart after archive_mode changes; then run
    `rfbackup pitr setup --check` to confirm a segment arrives.
    """
    from rfbackup.pitr import preflight
    from rfbackup.pitr import setup as pitr_setup

    s = settings(env, repo)
    if check:
        from rfbackup.pitr.archiver import confirm

        status, segment = confirm(s, wait)
        if as_json:
            print_json({"segment": segment, **status.to_dict()})
        else:
            typer.echo(
                f"archiving works: {segment} is in {s.open_repository().url} "
                f"({status.archived_count} archived, {status.failed_count} failed since the "
                f"last stats reset, {status.ready} waiting)"
            )
        return
    values = pitr_setup.archive_settings(s.primary_repository)
    user = preflight.server_user(data_dir)
    files: dict[str, Path] = {}
    if (config_file := pitr_setup.config_file()) is not None:
        files["config file"] = config_file
    if s.encryption.recipients_file is not None:
        files["recipients file"] = s.encryption.recipients_file.resolve()
    exe = pitr_setup.rfbackup_executable()
    problems = preflight.check(user, s.primary_repository, files, exe)
    if problems and fix_permissions:
        preflight.fix(problems)
        for problem in problems:
            typer.echo(f"fixed: {problem.message} ({'; '.join(problem.commands())})", err=True)
        problems = preflight.check(user, s.primary_repository, files, exe)
    if problems:
        for problem in problems:
            typer.echo(f"problem: {problem.message}", err=True)
            for command in problem.commands():
                typer.echo(f"  fix:   {command}", err=True)
        raise ConfigError(
            f"{user} could not archive WAL ({len(problems)} problem(s) above): run the fix "
            "commands as root, or re-run with --fix-permissions; nothing was written"
        )
    written = pitr_setup.apply(data_dir, values) if data_dir is not None else None
    if as_json:
        print_json(
            {"settings": values, "written_to": str(written) if written else None, "user": user}
        )
        return
    for key, value in values.items():
        typer.echo(f"{key} = {pitr_setup.conf_quote(value)}")
    typer.echo(f"checked: {user} can run rfbackup and write the repository", err=True)
    if written:
        typer.echo(
            f"written to {written}; restart PostgreSQL, then run `rfbackup pitr setup --check`",
            err=True,
        )
    typer.echo(
        "PostgreSQL runs archive_command as its own user, with its own environment: put the "
        "repository credentials in a config file it can read (RFBACKUP_CONFIG).",
        err=True,
    )


@app.command("list")
def list_base(env: EnvOption = None, repo: RepoOption = None, as_json: JsonOption = False) -> None:
    """List base backups, newest first, with their WAL range."""
    from rfbackup.pitr.basebackup import describe
    from rfbackup.pitr.recover import base_backups_all

    entries = base_backups_all(settings(env, repo).open_repository())
    rows = [
        {**(describe(e.manifest) if e.manifest else {"name": e.name}), "status": e.status}
        for e in entries
    ]
    if as_json:
        print_json(rows)
        return
    if not rows:
        typer.echo("no base backups", err=True)
        return
    from rfbackup.cli.tables import print_rows, utc

    print_rows(
        ["NAME", "STATUS", "FINISHED (UTC)", "TIMELINE", "WAL FROM", "WAL TO"],
        [
            [
                str(r["name"]),
                str(r["status"]),
                utc(r.get("finished_at")),
                str(r.get("timeline", "-")),
                str(r.get("wal_start", "-")),
                str(r.get("wal_stop", "-")),
            ]
            for r in rows
        ],
    )


@app.command("prune")
def prune(
    keep_days: Annotated[
        int | None,
        typer.Option(
            "--keep-days",
            min=0,
            max=MAX_DAYS,
            help="Keep base backups for this many days.",
            show_default="14, from rfbackup.toml [pitr] keep_days",
        ),
    ] = None,
    keep_min: Annotated[
        int | None,
        typer.Option(
            "--keep-min",
            min=1,
            help="Always keep this many newest base backups, whatever their age.",
            show_default="2, from rfbackup.toml [pitr] keep_min",
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show, delete nothing.")] = False,
    env: EnvOption = None,
    repo: RepoOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete old base backups, and the WAL older than the oldest base backup kept."""
    from rfbackup.pitr.archive import WalArchive
    from rfbackup.pitr.basebackup import base_backup_job
    from rfbackup.pitr.retention import apply, make_plan
    from rfbackup.retention import Policy

    s = settings(env, repo)
    with reported(s, "postgres-base", "prune") if not dry_run else nullcontext():
        archive = WalArchive(s.open_repository())
        policy = Policy(
            keep_days=s.pitr.keep_days if keep_days is None else keep_days,
            keep_min=s.pitr.keep_min if keep_min is None else keep_min,
        )
        if dry_run:
            result = make_plan(archive, policy, datetime.now(UTC))
        else:  # the same lock and lease as `backup base`: they exclude each other
            with base_backup_job(s, archive.repo):
                result = make_plan(archive, policy, datetime.now(UTC))
                apply(archive, result)
        _show_prune(result, dry_run, as_json)
        # Base backups it could not read were kept, with all WAL: the run fails, reported so.
        _check_doubts(result.unreadable)


def _show_prune(result: PitrPlan, dry_run: bool, as_json: bool) -> None:
    if as_json:
        print_json({"dry_run": dry_run, **result.to_dict()})
        return
    verb = "would delete" if dry_run else "deleted"
    for d in result.backups:
        typer.echo(f"{d.entry.name}\t{verb if d.delete else 'keep'}: {d.reason}")
    typer.echo(
        f"WAL: {len(result.wal_delete)} file(s) {verb}, {result.wal_keep} kept"
        + (f" (from {result.wal_from})" if result.wal_from else " (no base backup to anchor)")
        + (
            f"; {result.wal_locked} older kept, locked until "
            f"{result.wal_locked_until:%Y-%m-%d %H:%M:%S} UTC"
            if result.wal_locked_until
            else ""
        ),
    )


def _check_doubts(unreadable: list[str]) -> None:
    if unreadable:
        raise StorageError(
            f"{len(unreadable)} base backup manifest(s) could not be read: "
            f"{', '.join(unreadable)}; they and all WAL were kept (never deleted on doubt)"
        )


app.command("find")(pitr_copy.find)
app.command("start")(pitr_copy.start)
app.command("stop")(pitr_copy.stop)
