"""``rfbackup wal-verify``, and the archiver hooks ``wal-push`` and ``wal-fetch``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rfbackup.cli.common import EnvOption, JsonOption, RepoOption, print_json, settings
from rfbackup.errors import ConfigError, IntegrityError
from rfbackup.timefmt import rfc3339

if TYPE_CHECKING:
    from rfbackup.config import Settings
    from rfbackup.pitr.archiver import ArchiverStatus


def wal_verify(
    live: Annotated[
        bool,
        typer.Option(
            "--live",
            help="Also ask the live server (PGHOST...): archiver failures from "
            "pg_stat_archiver and the backlog of .ready segments in pg_wal.",
        ),
    ] = False,
    env: EnvOption = None,
    repo: RepoOption = None,
    as_json: JsonOption = False,
) -> None:
    """Report gaps in the archived WAL between the oldest base backup and the newest WAL.

    Exits 6 when a segment is missing, or with --live when the server's archiver is failing.
    """
    s = settings(env, repo)
    status = None
    if live:
        from rfbackup.pitr.archiver import read

        status = read(s)
        if not as_json:
            typer.echo(
                f"archiver: {status.archived_count} archived, {status.failed_count} failed, "
                f"{status.ready} waiting in pg_wal; last archived {status.last_archived_wal} "
                f"at {rfc3339(status.last_archived_time)}; last failed "
                f"{status.last_failed_wal} at {rfc3339(status.last_failed_time)}"
            )
    try:
        _verify_chain(s, status, as_json)
    finally:
        if status is not None and status.problem():
            raise IntegrityError(str(status.problem()))


def _verify_chain(s: Settings, status: ArchiverStatus | None, as_json: bool) -> None:
    from rfbackup.pitr import chain
    from rfbackup.pitr.archive import WalArchive
    from rfbackup.pitr.basebackup import wal_range
    from rfbackup.pitr.recover import base_backups

    repository = s.open_repository()
    backups = base_backups(repository)
    if not backups:
        if status is not None and as_json:
            print_json({"ok": False, "live": status.to_dict()})
        raise ConfigError("no base backup in the repository: nothing to verify WAL from")
    oldest = backups[-1]
    assert oldest.manifest is not None
    start, _ = wal_range(oldest.manifest)
    report = chain.check(WalArchive(repository, identities=s.encryption.identities()), start)
    doc = {
        "oldest_base_backup": oldest.name,
        "from": start.name,
        "to": report.last.name if report.last else None,
        "timelines": [t for t, _ in report.lineage.steps],
        "newest_archived_at": report.newest_archived_at,
        "missing": report.missing,
        "ok": report.ok and (status is None or not status.problem()),
        **({"live": status.to_dict()} if status is not None else {}),
    }
    if as_json:
        print_json(doc)
    elif report.ok:
        typer.echo(f"WAL complete from {doc['from']} to {doc['to']} (timelines {doc['timelines']})")
    if not report.ok:
        shown = ", ".join(report.missing[:10]) + (" ..." if len(report.missing) > 10 else "")
        raise IntegrityError(
            f"{len(report.missing)} WAL file(s) missing between {doc['from']} and "
            f"{doc['to']}: {shown}"
        )


def wal_push(
    path: Annotated[str, typer.Argument(help="The WAL file (%p).")],
    repo: RepoOption = None,
) -> None:
    """archive_command: archive one WAL file (and other ready ones). Use as
    archive_command = 'rfbackup wal-push %p' (see `rfbackup pitr setup`)."""
    from rfbackup.pitr.walcmd import push_command

    raise typer.Exit(push_command(Path(path), repo))


def wal_fetch(
    name: Annotated[str, typer.Argument(help="The WAL file name (%f).")],
    dest: Annotated[str, typer.Argument(help="Where PostgreSQL wants it (%p).")],
    repo: RepoOption = None,
) -> None:
    """restore_command: fetch one WAL file. Exits 1 silently when it is not archived."""
    from rfbackup.pitr.walcmd import fetch_command

    raise typer.Exit(fetch_command(name, Path(dest), repo))
