from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Console
from rich.table import Table

from rfbackup.catalog import Entry
from rfbackup.progress import human_bytes


def age(created: datetime, now: datetime) -> str:
    secs = max(0, int((now - created).total_seconds()))
    if secs < 3600:
        return f"{secs // 60}m"
    if secs < 86400:
        return f"{secs // 3600}h"
    return f"{secs // 86400}d"


def table(entries: list[Entry], extra: dict[str, str] | None = None) -> None:
    now = datetime.now(UTC)
    t = Table(box=None, pad_edge=False)
    for col in ("NAME", "CREATED (UTC)", "AGE", "SIZE", "STATUS"):
        t.add_column(col, justify="right" if col in ("AGE", "SIZE") else "left")
    if extra is not None:
        t.add_column("ACTION / REASON")
    for e in entries:
        status = e.status if e.good else f"[bold red]{e.status}[/]"
        row = [
            e.name,
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
