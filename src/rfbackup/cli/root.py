"""The ``rfbackup`` Typer app. Each command parses, calls one service function, and renders."""

from __future__ import annotations

import signal
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
import typer.core
import typer.main
from typer._click.exceptions import NoArgsIsHelpError

from rfbackup import __version__
from rfbackup.cli import artifacts as artifacts_cmd
from rfbackup.cli import backup as backup_cmd
from rfbackup.cli import check as check_cmd
from rfbackup.cli import dr as dr_cmd
from rfbackup.cli import drill as drill_cmd
from rfbackup.cli import k8s as k8s_cmd
from rfbackup.cli import keys as keys_cmd
from rfbackup.cli import listing as listing_cmd
from rfbackup.cli import mode as mode_cmd
from rfbackup.cli import pitr as pitr_cmd
from rfbackup.cli import replica as replica_cmd
from rfbackup.cli import restore as restore_cmd
from rfbackup.cli import status as status_cmd
from rfbackup.cli import unlock as unlock_cmd
from rfbackup.cli import wal as wal_cmd
from rfbackup.cli.common import (
    ComponentOption,
    EnvOption,
    JsonOption,
    RepoOption,
    confirmer,
    print_json,
    reported,
    settings,
)
from rfbackup.cli.errors import causes as causes  # re-exported
from rfbackup.cli.errors import install_signal_handlers, report_error
from rfbackup.cli.helpfmt import HOOKS_PANEL
from rfbackup.errors import Aborted, Interrupted, RfBackupError
from rfbackup.limits import MAX_DAYS

if TYPE_CHECKING:
    from rfbackup.retention import Decision

app = typer.Typer(
    help="Backups and disaster recovery for ResearchFlow.",
    epilog="Run `rfbackup COMMAND --help` for a command's options. Every time printed is UTC.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(backup_cmd.app, name="backup")
app.add_typer(restore_cmd.app, name="restore")
app.command("list")(listing_cmd.list_backups)
app.add_typer(replica_cmd.app, name="replica")
app.add_typer(artifacts_cmd.app, name="artifacts")
app.add_typer(pitr_cmd.app, name="pitr")
app.add_typer(k8s_cmd.app, name="k8s")
app.command("status")(status_cmd.status)
app.add_typer(keys_cmd.app, name="keys")
app.command("unlock")(unlock_cmd.unlock)
app.command("drill")(drill_cmd.drill)
app.command("mode")(mode_cmd.mode)
app.add_typer(dr_cmd.app, name="dr")
app.command("check")(check_cmd.check)
app.command("unhide")(check_cmd.unhide)
app.command("wal-push", rich_help_panel=HOOKS_PANEL)(wal_cmd.wal_push)
app.command("wal-fetch", rich_help_panel=HOOKS_PANEL)(wal_cmd.wal_fetch)
app.command("wal-verify")(wal_cmd.wal_verify)
# The root help lists commands in this order; others follow, archiver hooks last.
ROOT_ORDER = (
    "backup", "list", "restore", "prune", "status", "get", "prune-databases", "replica", "pitr",
    "wal-verify", "schedule",
)  # fmt: skip
schedule_app = typer.Typer(help="Scheduling helpers.", no_args_is_help=True)
app.add_typer(schedule_app, name="schedule")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"rfbackup {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose", "-v", help="On an error, also show the underlying causes it hides."
        ),
    ] = False,
) -> None:
    _state["verbose"] = verbose


_state = {"verbose": False}


@app.command()
def prune(
    keep_days: Annotated[
        int | None,
        typer.Option(
            "--keep-days",
            min=0,
            max=MAX_DAYS,
            help="Delete backups older than this many days.",
            show_default="each component's keep_days: postgres 30",
        ),
    ] = None,
    keep_min: Annotated[
        int | None,
        typer.Option(
            "--keep-min",
            min=0,
            help="Always keep this many newest good backups of each database (instance...), "
            "whatever their age.",
            show_default="each component's keep_min: postgres 3",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would go, and why.")
    ] = False,
    include_unmanaged: Annotated[
        bool,
        typer.Option(
            "--include-unmanaged",
            help="Also age out backup_* files without a manifest (other files never).",
        ),
    ] = False,
    delete_damaged: Annotated[
        bool,
        typer.Option(
            "--delete-damaged",
            help="Also delete damaged and bad-manifest entries older than --keep-days.",
        ),
    ] = False,
    components: ComponentOption = None,
    env: EnvOption = None,
    repo: RepoOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete old backups (retention). Never touches a backup still being written.

    Each component (postgres, redis...) keeps its own policy from the configuration;
    --keep-days and --keep-min override it for the components pruned. Entries whose
    manifest could not be read are kept, and the run then fails (exit 8).
    """
    from rfbackup.engine.registry import retention
    from rfbackup.prune import check_doubts
    from rfbackup.prune import prune as run_prune

    s = settings(env, repo)
    done: list[tuple[str, Decision]] = []
    failed: RfBackupError | None = None
    for component in components or list(retention(s)):
        # A run that kept backups it could not read fails (check_doubts), and is reported so.
        try:
            with reported(s, component, "prune") if not dry_run else nullcontext():
                mine = run_prune(
                    s,
                    keep_days=keep_days,
                    keep_min=keep_min,
                    dry_run=dry_run,
                    include_unmanaged=include_unmanaged,
                    delete_damaged=delete_damaged,
                    components=[component],
                )
                done += mine
                check_doubts(mine)
        except RfBackupError as exc:  # the other components are still pruned
            failed = failed or exc
    _show_prune(done, dry_run, as_json)
    if failed is not None:
        raise failed


def _show_prune(done: list[tuple[str, Decision]], dry_run: bool, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "dry_run": dry_run,
                "decisions": [{**d.to_dict(), "repository": url} for url, d in done],
            }
        )
        return
    from rfbackup.cli.listview import table

    verb = "would delete" if dry_run else "deleted"
    for url in dict.fromkeys(u for u, _ in done):
        decisions = [d for u, d in done if u == url]
        typer.echo(f"{url}:", err=True)
        table(
            [d.entry for d in decisions],
            {d.entry.name: f"{verb if d.delete else 'keep'}: {d.reason}" for d in decisions},
        )
    gone = sum(d.delete for _, d in done)
    locked = sum(d.locked_until is not None or d.reason.startswith("locked") for _, d in done)
    held = f" ({locked} locked by Object Lock)" if locked else ""
    typer.echo(
        f"{gone} {'would be ' if dry_run else ''}deleted, {len(done) - gone} kept{held}", err=True
    )


@app.command("prune-databases")
def prune_databases(
    keep_days: Annotated[
        int,
        typer.Option("--keep-days", min=0, max=MAX_DAYS, help="Drop leftovers older than this."),
    ] = 7,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be dropped; drop nothing.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    env: EnvOption = None,
    as_json: JsonOption = False,
) -> None:
    """Drop databases left by restores: DB_pre_restore_* (replaced) and DB_restore_* (killed).

    Databases with open sessions are never dropped.
    """
    from rfbackup.prune_databases import prune_databases as run

    s = settings(env)
    if not dry_run and not yes:
        preview = [d.name for d in run(s, keep_days, dry_run=True) if d.drop]
        if preview:
            question = f"Drop {len(preview)} database(s): {', '.join(preview)}?"
            if not confirmer(yes)(question):
                raise Aborted("nothing was dropped")
    decisions = run(s, keep_days, dry_run=dry_run)
    if as_json:
        print_json({"dry_run": dry_run, "databases": [d.to_dict() for d in decisions]})
        return
    if not decisions:
        typer.echo("no databases left by restores", err=True)
        return
    from rfbackup.cli.tables import print_rows

    verb = "would drop" if dry_run else "dropped"
    print_rows(
        ["DATABASE", "KIND", "ACTION / REASON"],
        [[d.name, d.kind, f"{verb if d.drop else 'keep'}: {d.reason}"] for d in decisions],
    )


@app.command()
def get(
    backup: Annotated[str, typer.Argument(help="A backup name or s3:// URL.")],
    dest: Annotated[Path, typer.Argument(help="Folder to download into.")] = Path("."),
    allow_unverified: Annotated[
        bool,
        typer.Option(
            "--allow-unverified",
            help="Download even if the manifest is unsigned or not signed by a trusted key.",
        ),
    ] = False,
    env: EnvOption = None,
    repo: RepoOption = None,
    as_json: JsonOption = False,
) -> None:
    """Download a backup and its manifest unchanged (sha256 verified), e.g. from S3.

    The copy can be restored with `rfbackup restore DEST/NAME`.
    """
    from rfbackup.download import get as download

    path = download(settings(env, repo), backup, dest, allow_unverified)
    if as_json:
        print_json({"path": str(path)})
    else:
        typer.echo(str(path))


@schedule_app.command("crontab")
def crontab(
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            metavar="DIR",
            help="The checkout cron should cd into.",
            show_default="the current directory",
        ),
    ] = None,
    env: EnvOption = None,
) -> None:
    """Print the cron lines: the runbook's daily backup (02:00) and weekly retention (Sunday
    03:00), the weekly base backup, the daily WAL check, weekly PITR expiry, and the daily
    replica check when a replica is configured, the daily artifact snapshot when
    artifacts.paths is set. Times: [schedule] in rfbackup.toml."""
    from rfbackup.config import load
    from rfbackup.schedule import crontab_lines

    s = load(env=env)
    lines = crontab_lines(
        directory or Path.cwd(),
        s.schedule,
        replica=bool(s.replica.url),
        artifacts=bool(s.artifacts.paths),
    )
    typer.echo("\n".join(lines))


def command() -> typer.core.TyperGroup:
    """The command tree, with the help renderer of cli/helpfmt.py and the commands in order."""
    from rfbackup.cli.helpfmt import polish

    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    polish(group, order=ROOT_ORDER)
    return group


def main(argv: list[str] | None = None) -> None:
    from rfbackup.cli.legacy import rewrite

    install_signal_handlers()
    kinds = tuple(str(c.name) for c in restore_cmd.app.registered_commands)
    args = rewrite(sys.argv[1:] if argv is None else argv, kinds)
    try:
        rv = command().main(args=args, prog_name="rfbackup", standalone_mode=False)
        code = rv if isinstance(rv, int) else 0
        if code == 128 + signal.SIGINT:  # Typer turns KeyboardInterrupt into Exit(130)
            code = _report(Interrupted(signal.SIGINT))
    except RfBackupError as exc:
        code = _report(exc)
    except KeyboardInterrupt:
        code = _report(Interrupted(signal.SIGINT))
    except typer.Abort:
        code = _report(Aborted("aborted"))
    except NoArgsIsHelpError as exc:  # a bare group: its help, and success
        typer.echo(exc.ctx.get_help() if exc.ctx else "")
        code = 0
    except typer.TyperException as exc:  # usage errors: one line, exit 2
        hint = " (see --help)"
        print(f"rfbackup: error: {exc.format_message()}{hint}", file=sys.stderr)
        code = getattr(exc, "exit_code", 2)
    sys.exit(code)


def _report(exc: RfBackupError) -> int:
    return report_error(exc, _state["verbose"])
