"""``rfbackup list``: every component's backups in one table (or one JSON schema).

Typer, pydantic and the artifact source's modules load only when needed: ``rfbackup list``
of a local repository starts in well under 0.2 s (cli/lean.py, benchmarks/startup.py).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rfbackup.cli.output import print_json

if TYPE_CHECKING:
    from rfbackup.catalog import Entry
    from rfbackup.config import Settings
    from rfbackup.config_lean import LeanSettings
    from rfbackup.storage import Repository


def show(components: list[str] | None, env: str | None, repo: str | None, as_json: bool) -> None:
    """List the backups (see cli/listing.py for what is shown)."""
    from rfbackup import catalog
    from rfbackup.engine.locks import repository_lock

    s = lean_settings(env, repo)
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
    if (not components or "artifacts" in components) and _has_artifacts(repository):
        from rfbackup.sources.artifacts.summary import artifacts_summary

        arts = artifacts_summary(repository)
    summaries = [x for x in (wal, arts) if x is not None]
    if as_json:
        print_json([e.to_dict() for e in entries] + summaries)
    elif not entries and not summaries:
        print(f"no backups in {repository.url}", file=sys.stderr)
    else:
        table(entries)
        if wal is not None:
            print(wal_line(wal))
        if arts is not None:
            from rfbackup.sources.artifacts.summary import artifacts_line

            print(artifacts_line(arts))
    unread = [e for e in entries if e.status == catalog.UNREADABLE]
    if unread:  # listed, but their state is unknown: a script must not take this as fine
        from rfbackup.errors import StorageError

        raise StorageError(
            f"{len(unread)} backup(s) could not be read: "
            + ", ".join(e.name for e in unread)
            + f"; first error: {unread[0].problem}"
        )


def lean_settings(env: str | None = None, repo: str | None = None) -> Settings | LeanSettings:
    """Like :func:`settings` for commands that need only what config_lean.py reads (a local
    repository, the log file, the locks): without pydantic when the configuration allows."""
    from rfbackup import config_lean, logs

    s = config_lean.load(env=env, repository=repo)
    if s is None:
        from rfbackup.cli.common import settings

        return settings(env, repo)
    logs.setup(s.log_file)
    return s


def _has_artifacts(repository: Repository) -> bool:
    """Any object under artifacts/? (Its summary's modules cost more than a listing.)"""
    from rfbackup.sources.artifacts import PREFIX

    return next(iter(repository.list(PREFIX)), None) is not None


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
