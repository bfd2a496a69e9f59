"""What a restore is about to do, said before it is done.

The question names the backup's database and the one it replaces, host and environment,
the backup's age, the sessions that will be ended, the old database that is kept and the
disk it holds, and the free space the new copy needs. Restoring database X's backup over
database Y is refused unless ``--force-target``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg

from rfbackup.errors import RestoreError
from rfbackup.progress import human_bytes

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclass
class RestorePlan:
    backup: str
    host: str
    database: str
    replace: bool  # swap into place (True) or restore beside (--target-db)
    source_db: str | None = None
    backup_env: str | None = None
    env: str = ""
    backup_taken: datetime | None = None
    exists: bool = False
    sessions: int = 0
    live_bytes: int = 0
    needed_bytes: int = 0
    free_bytes: int | None = None
    warnings: list[str] = field(default_factory=list)

    def check_target(self, force_target: bool) -> None:
        """A backup of another database replaces this one only with --force-target (a
        database that does not exist yet is not replaced: restoring under a new name is fine)."""
        if not (self.replace and self.exists) or self.source_db in (None, self.database):
            return
        if force_target:
            self.warnings.append(
                f"--force-target: database {self.database!r} is replaced by a backup of "
                f"{self.source_db!r}"
            )
            return
        raise RestoreError(
            f"{self.backup} is a backup of database {self.source_db!r}, not {self.database!r}; "
            f"re-run with --force-target to replace {self.database!r} with it"
        )

    def question(self) -> str:
        source = repr(self.source_db) if self.source_db else "an unknown database (no manifest)"
        age = f", taken {_age(self.backup_taken)} ago" if self.backup_taken else ""
        env = f" in {self.backup_env}" if self.backup_env else ""
        head = f"Restore {self.backup} (database {source}{env}{age})"
        where = f"on {self.host} ({self.env})"
        parts: list[str] = []
        if not self.replace:
            parts.append(f"{head} into a new database {self.database!r} {where}?")
        else:
            parts.append(f"{head} into database {self.database!r} {where}?")
            if self.exists:
                parts.append(
                    f"{self.sessions} open session(s) on {self.database!r} will be terminated."
                )
                size = human_bytes(self.live_bytes) if self.live_bytes else "its"
                parts.append(
                    f"The current database will be kept under a dated name; it holds "
                    f"{size} of disk until it is dropped."
                )
            else:
                parts.append(f"Database {self.database!r} does not exist yet.")
        if self.needed_bytes:
            free = f", {human_bytes(self.free_bytes)} free" if self.free_bytes is not None else ""
            parts.append(f"The restored copy needs about {human_bytes(self.needed_bytes)}{free}.")
        parts += [f"WARNING: {w}." for w in self.warnings]
        return " ".join(parts)


def _age(then: datetime) -> str:
    seconds = max(0, int((datetime.now(UTC) - then).total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {rest // 60}m" if hours else f"{rest // 60}m"


def gather(plan: RestorePlan, admin: psycopg.Connection[Any], host: str | None) -> None:
    """Fill in what the server can tell: does the target exist, its sessions and size, and
    the free space beside the data directory when the server runs on this machine."""
    with admin.cursor() as cur:
        cur.execute(
            "SELECT (SELECT count(*) FROM pg_stat_activity a"
            " WHERE a.datname = d.datname AND a.pid <> pg_backend_pid())"
            " FROM pg_database d WHERE d.datname = %s",
            (plan.database,),
        )
        row = cur.fetchone()
        if row is not None:
            plan.exists, plan.sessions = True, int(row[0])
            try:  # needs CONNECT on it (or pg_read_all_stats)
                cur.execute("SELECT pg_database_size(%s)", (plan.database,))
                got_size = cur.fetchone()
                plan.live_bytes = int(got_size[0]) if got_size else 0
            except psycopg.Error:
                plan.warnings.append(f"the size of {plan.database!r} could not be read")
        data_dir = None
        if host is None or host.startswith("/") or host in LOCAL_HOSTS:
            try:
                cur.execute("SELECT current_setting('data_directory')")
                got = cur.fetchone()
                data_dir = str(got[0]) if got else None
            except psycopg.Error:  # not allowed to see it: no free-space check
                data_dir = None
    if data_dir is not None:
        try:
            st = os.statvfs(data_dir)
            plan.free_bytes = st.f_bavail * st.f_frsize
        except OSError:
            plan.free_bytes = None
    if plan.free_bytes is not None and plan.needed_bytes > plan.free_bytes:
        plan.warnings.append(
            f"only {human_bytes(plan.free_bytes)} free where the server keeps its data, "
            f"and the backup's database was {human_bytes(plan.needed_bytes)}"
        )
    elif plan.free_bytes is None and plan.needed_bytes:
        plan.warnings.append("free disk space on the server could not be checked")
