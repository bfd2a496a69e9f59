"""``rfbackup pitr find`` (when did the rows go?) and ``pitr start|stop DIR`` (run a recovered
copy as its owner, with the pg_ctl of its version)."""

from __future__ import annotations

import pwd
import subprocess
from pathlib import Path
from typing import Annotated, Literal

import typer

from rfbackup.cli.common import EnvOption, JsonOption, RepoOption, print_json, settings
from rfbackup.errors import ConfigError, RestoreError
from rfbackup.timefmt import rfc3339

DataDirArgument = Annotated[
    Path, typer.Argument(metavar="DIR", help="The recovered copy's data directory.")
]


def find(
    table: Annotated[
        str,
        typer.Option("--table", metavar="TABLE", help="The table, e.g. items or public.items."),
    ],
    op: Annotated[
        Literal["delete", "update", "insert"],
        typer.Option("--op", help="Which change to look for."),
    ] = "delete",
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            metavar="TIME",
            help="Only WAL archived, and transactions committed, after this time (with a zone, "
            "e.g. 2026-11-25T10:00:00Z). Default: all archived WAL of the current timeline.",
        ),
    ] = None,
    relfilenode: Annotated[
        int | None,
        typer.Option(
            "--relfilenode",
            help="Look for this file number instead of the table's current one (after a "
            "TRUNCATE or VACUUM FULL gave the table a new file).",
        ),
    ] = None,
    env: EnvOption = None,
    repo: RepoOption = None,
    as_json: JsonOption = False,
) -> None:
    """Find the transactions that deleted (updated, inserted) rows of a table, in archived WAL.

    Connects to the live server (PGHOST...) to map the table to its file, fetches the archived
    segments into a private temporary folder, and reads them with pg_waldump. Prints each
    transaction's id, commit time and the --target-time that stops just before it. Run SELECT
    pg_switch_wal() on the server first: the current segment is not archived yet. See
    docs/pitr.md for the limits (TRUNCATE, VACUUM FULL).
    """
    from rfbackup.pitr.find import find as run_find
    from rfbackup.pitr.recover import parse_time

    start = parse_time(since) if since is not None else None
    found = run_find(settings(env, repo), table, op, start, relfilenode)
    if as_json:
        print_json(found.to_dict())
        return
    typer.echo(
        f"{found.table} (file {found.relation}), timeline {found.timeline}, "
        f"{len(found.segments)} archived segment(s) read"
    )
    if not found.changes:
        typer.echo(f"no {op} on {found.table} in the archived WAL", err=True)
        return
    typer.echo(f"{'XID':>10}  {'ROWS':>6}  {'COMMITTED (UTC)':<27}  STOP BEFORE IT WITH")
    for c in found.changes:
        when = rfc3339(c.committed_at) or "not committed yet"
        hint = (
            f"--target-time {rfc3339(c.target_time())}"
            if c.committed_at and not c.aborted
            else "(rolled back)"
            if c.aborted
            else "-"
        )
        typer.echo(f"{c.xid:>10}  {c.records:>6}  {when:<27}  {hint}")


def _pg_ctl(data_dir: Path, *args: str) -> None:
    from rfbackup.pitr.server import as_owner
    from rfbackup.sources.postgres import tools

    version = data_dir / "PG_VERSION"
    if not version.is_file():
        raise ConfigError(f"{data_dir} is not a PostgreSQL data directory (no PG_VERSION)")
    major = int(version.read_text().strip())
    owner = pwd.getpwuid(data_dir.stat().st_uid)
    pg_ctl = tools.find("pg_ctl", None, major)
    cmd = as_owner([pg_ctl, "-D", str(data_dir), *args], owner)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines() or ["no output"]
        raise RestoreError(f"pg_ctl {args[-1]} failed: {lines[-1]}")


def start(data_dir: DataDirArgument) -> None:
    """Start a recovered copy as the owner of DIR, logging to DIR/rfbackup-pitr.log."""
    from rfbackup.pitr.server import LOG_NAME

    _pg_ctl(data_dir, "-l", str(data_dir / LOG_NAME), "-w", "start")
    typer.echo(f"started {data_dir} (log: {data_dir / LOG_NAME})")


def stop(data_dir: DataDirArgument) -> None:
    """Stop a recovered copy (fast shutdown) as the owner of DIR."""
    if not (data_dir / "postmaster.pid").exists():
        typer.echo(f"{data_dir} is not running", err=True)
        return
    _pg_ctl(data_dir, "-m", "fast", "-w", "stop")
    typer.echo(f"stopped {data_dir}")
