"""``rfbackup list``: every component's backups in one table (or one JSON schema)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import typer

from rfbackup.cli.common import ComponentOption, EnvOption, JsonOption, RepoOption, print_json
from rfbackup.cli.common import settings as load_settings

if TYPE_CHECKING:
    from rfbackup.catalog import Entry


def list_backups(
    components: ComponentOption = None,
    env: EnvOption = None,
    repo: RepoOption = None,
    as_json: JsonOption = False,
) -> None:
    """List backups of every component, newest first, with their status.

    Logical dumps, base backups, Redis snapshots... one line summing up the WAL
    archive (first and last segment, gaps) and one for the artifact snapshots (how many,
    newest, stored size; `rfbackup artifacts list` shows them). Files without a manifest
    (e.g. made by the old scripts) are shown as no-manifest. Exits 8 after the listing
    when a manifest could not be read (its backup's state is unknown).
    """
    from rfbackup import catalog
    from rfbackup.engine.locks import repository_lock

    s = load_settings(env, repo)
    repository = s.open_repository()
    lock = repository_lock(repository, locks=s.locks)[1]
    entries = catalog.scan(repository, lock, include_base=True)
    if components:
        entries = [e for e in entries if e.component in components]
    wal = None
    if not components or "wal" in components:
        from rfbackup.pitr.summary import wal_summary

        wal = wal_summary(repository)
    arts = None
    if not components or "artifacts" in components:
        from rfbackup.sources.artifacts.summary import artifacts_summary

        arts = artifacts_summary(repository)
    summaries = [x for x in (wal, arts) if x is not None]
    if as_json:
        print_json([e.to_dict() for e in entries] + summaries)
    elif not entries and not summaries:
        typer.echo(f"no backups in {repository.url}", err=True)
    else:
        table(entries)
        if wal is not None:
            typer.echo(wal_line(wal))
        if arts is not None:
            from rfbackup.sources.artifacts.summary import artifacts_line

            typer.echo(artifacts_line(arts))
    unread = [e for e in entries if e.status == catalog.UNREADABLE]
    if unread:  # listed, but their state is unknown: a script must not take this as fine
        from rfbackup.errors import StorageError

        raise StorageError(
            f"{len(unread)} backup(s) could not be read: "
            + ", ".join(e.name for e in unread)
            + f"; first error: {unread[0].problem}"
        )


def wal_line(wal: dict[str, Any]) -> str:
    from rfbackup.progress import human_bytes

    if not wal["segments"]:
        return "WAL archive: empty"
    gaps = f", {wal['gap_count']} MISSING (first {wal['gaps'][0]})" if wal["gap_count"] else ""
    return (
        f"WAL archive: {wal['segments']} segments, {wal['first']} .. {wal['last']}, "
        f"{human_bytes(wal['size_bytes'])}{gaps or ', no gaps'}"
    )


def age(created: datetime, now: datetime) -> str:
    secs = max(0, int((now - created).total_seconds()))
    if secs < 3600:
        return f"{secs // 60}m"
    if secs < 86400:
        return f"{secs // 3600}h"
    return f"{secs // 86400}d"


def table(entries: list[Entry], extra: dict[str, str] | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    from rfbackup.progress import human_bytes

    now = datetime.now(UTC)
    t = Table(box=None, pad_edge=False)
    for col in ("NAME", "COMPONENT", "CREATED (UTC)", "AGE", "SIZE", "STATUS"):
        t.add_column(col, justify="right" if col in ("AGE", "SIZE") else "left")
    if extra is not None:
        t.add_column("ACTION / REASON")
    for e in entries:
        status = e.status if e.good else f"[bold red]{e.status}[/]"
        row = [
            e.name,
            e.component,
            e.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            age(e.created_at, now),
            human_bytes(e.size_bytes),
            status,
        ]
        if extra is not None:
            row.append(extra.get(e.name, ""))
        t.add_row(*row)
    console = Console(highlight=False)
    if not console.is_terminal:  # cron, pipes: never wrap or truncate names
        console = Console(highlight=False, width=max(console.width, 200))
    console.print(t)
