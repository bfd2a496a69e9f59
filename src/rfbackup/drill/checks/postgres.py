"""The PostgreSQL logical backup: restore the newest backup of the configured database into
a scratch database beside it (``rfbackup_drill_<id>``), through the same code path as
``rfbackup restore`` (sha256 before anything is touched, row counts, large objects,
sequences and materialized views against the manifest), then compare with production.

RTO: the whole restore (verify + load + checks). RPO: the age, at drill time, of the dump's
snapshot (the manifest's start time): what a restore of it would lose.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING

from rfbackup import catalog
from rfbackup.drill import pgcompare
from rfbackup.drill.registry import register
from rfbackup.errors import Interrupted, RfBackupError
from rfbackup.logs import log

if TYPE_CHECKING:
    from rfbackup.drill.context import Context
    from rfbackup.drill.model import CheckResult

COMPONENT = "postgres"


def newest(ctx: Context, dbname: str | None) -> catalog.Entry | None:
    """The newest logical backup of ``dbname`` (any status: a damaged newest backup is a
    finding, not a reason to quietly test an older one)."""
    env = ctx.settings.env.value
    for e in catalog.scan(ctx.repo):
        if e.component != COMPONENT or e.status == "no-manifest":
            continue
        if e.environment not in (None, env):  # another environment's backups, same bucket
            continue
        m = e.manifest
        subject = (m.subject or m.database.get("name")) if m else None
        if dbname is None or subject in (None, dbname):
            return e
    return None


class PostgresLogicalCheck:
    component = COMPONENT
    order = 10

    def skip_reason(self, ctx: Context) -> str | None:
        if newest(ctx, ctx.settings.postgres_target().dbname) is None:
            return f"no PostgreSQL backup in {ctx.repo.url}"
        return None

    def run(self, ctx: Context, result: CheckResult) -> None:
        from rfbackup.restore import restore_postgres
        from rfbackup.sources.postgres import restore as pg

        prod = ctx.settings.postgres_target()
        entry = newest(ctx, prod.dbname)
        assert entry is not None
        result.backup = entry.name
        result.sha256 = entry.sha256
        m = entry.manifest
        taken = datetime.fromisoformat(m.started_at) if m else entry.created_at
        result.backup_taken_at = taken.isoformat()
        result.restorable_point = taken.isoformat()
        result.rpo_seconds = round(max(ctx.now - taken.timestamp(), 0.0), 1)
        if not entry.good:
            result.check("backup status", False, f"{entry.name} is {entry.status}: {entry.problem}")
            return
        scratch = ctx.scratch_name("")
        where = ctx.settings.drill_settings()  # the scratch server, or production's
        server = where.postgres_target()
        result.target = f"database {scratch} on {server.server}"

        def drop() -> None:
            with pg.admin_connection(server) as admin:
                rows = admin.execute(
                    "SELECT datname FROM pg_database WHERE datname = %s OR datname LIKE %s",
                    (scratch, scratch.replace("_", r"\_") + r"\_restore\_%"),
                ).fetchall()
                for (name,) in rows:
                    pg.drop_database(admin, name)

        ctx.scratch.add(result.target, drop)  # before it exists: an interrupt cannot leak it
        t0 = time.monotonic()
        try:
            restored = restore_postgres(
                where, entry.name, target_db=scratch, confirm=lambda q: True
            )
        except Interrupted:
            raise
        except RfBackupError as exc:
            result.check("restore", False, str(exc))
            return
        result.rto_seconds = round(time.monotonic() - t0, 3)
        result.check(
            "restore",
            True,
            f"sha256 verified; {restored['tables']} tables, {restored['rows']} rows match "
            "the manifest (row counts, large objects, sequences, materialized views)",
        )
        target = server.with_dbname(scratch)
        counts = pgcompare.restored_counts(target, result)
        before = m.dump.get("snapshot_xmin") if m else None
        log.info("comparing %s with production %s", scratch, prod.display)
        pgcompare.compare_with_production(
            target,
            prod.with_dbname(prod.dbname or str(m.database.get("name") if m else "")),
            counts,
            int(before) if before is not None else None,
            ctx.sample_rows,
            result,
        )


register(PostgresLogicalCheck())
