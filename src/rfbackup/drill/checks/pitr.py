"""Point-in-time recovery: the newest base backup plus every archived WAL segment after it,
recovered to the end of the archive in a scratch cluster (a temporary data directory, a
free port on 127.0.0.1, archiving off), through the code of ``rfbackup pitr``.

RTO: extract + WAL replay until the cluster is promoted and accepts connections. RPO: the
age, at drill time, of the newest archived WAL segment (the newest point a recovery can
reach); and the gap between the last transaction the recovery replayed and that segment.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from rfbackup.drill import pgcompare
from rfbackup.drill.registry import register
from rfbackup.errors import Interrupted, RfBackupError

if TYPE_CHECKING:
    from rfbackup.drill.context import Context
    from rfbackup.drill.model import CheckResult


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_time(text: str | None) -> datetime | None:
    """PostgreSQL's log time (``2026-11-26 17:30:00.123456+00``) as a UTC datetime."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace(" ", "T", 1))
    except ValueError:
        return None
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


class PitrCheck:
    component = "pitr"
    order = 20

    def skip_reason(self, ctx: Context) -> str | None:
        from rfbackup.pitr.recover import base_backups

        if not base_backups(ctx.repo):
            return f"no base backup in {ctx.repo.url}"
        return None

    def run(self, ctx: Context, result: CheckResult) -> None:
        from rfbackup.pitr.recover import Request, Target, base_backups, pitr
        from rfbackup.pitr.server import as_owner, owner_of
        from rfbackup.sources.postgres import tools

        started = time.time()  # RPO from here: WAL archived after the drill began counts
        newest = base_backups(ctx.repo)[0]
        assert newest.manifest is not None
        result.backup = newest.name
        result.sha256 = newest.sha256
        result.backup_taken_at = newest.manifest.started_at
        owner = owner_of(None)
        parent = Path(tempfile.mkdtemp(prefix="rfbackup-drill-", dir=ctx.settings.tmp_dir))
        result.target = f"scratch cluster in {parent}"
        pg_ctl = tools.find("pg_ctl", ctx.settings.pg_bin)

        def remove() -> None:
            for data_dir in parent.glob("data*"):
                if (data_dir / "postmaster.pid").exists():
                    cmd = [pg_ctl, "-D", str(data_dir), "-m", "immediate", "-w", "stop"]
                    subprocess.run(as_owner(cmd, owner), capture_output=True, check=False)
            shutil.rmtree(parent, ignore_errors=True)

        ctx.scratch.add(result.target, remove)  # before it exists: nothing can leak
        if os.geteuid() == 0:
            os.chown(parent, owner.pw_uid, owner.pw_gid)
        for attempt in range(3):
            port = free_port()
            req = Request(
                Target("latest"),
                parent / f"data{attempt}",
                start=True,
                port=port,
                server_settings={
                    "listen_addresses": "127.0.0.1",
                    "unix_socket_directories": str(parent),
                },
            )
            try:
                outcome = pitr(ctx.settings, req)
                break
            except Interrupted:
                raise
            except RfBackupError as exc:
                log_file = req.data_dir / "rfbackup-pitr.log"
                raced = log_file.exists() and "could not bind" in log_file.read_text(
                    "utf-8", "replace"
                )
                if not raced or attempt == 2:  # else the free port was taken meanwhile
                    result.check("recovery", False, str(exc))
                    return
        result.rto_seconds = outcome.seconds
        result.facts.update(
            port=port,
            restored_wal=outcome.restored_wal,
            newest_wal=outcome.newest_wal,
            recovery_stopped=outcome.stopped_at,
            last_transaction=outcome.last_transaction,
            timeline=outcome.timeline,
        )
        newest_at = (
            datetime.fromisoformat(outcome.newest_wal_archived_at)
            if outcome.newest_wal_archived_at
            else None
        )
        if newest_at is not None:
            result.restorable_point = newest_at.isoformat()
            result.rpo_seconds = round(max(started - newest_at.timestamp(), 0.0), 1)
        replayed = pg_time(outcome.last_transaction)
        if replayed is not None and newest_at is not None:
            result.facts["gap_last_transaction_to_newest_wal_seconds"] = round(
                max(newest_at.timestamp() - replayed.timestamp(), 0.0), 1
            )
        result.check(
            "recovery",
            outcome.promoted,
            f"{outcome.restored_wal} WAL segments replayed up to {outcome.newest_wal}; "
            f"promoted on port {port}",
        )
        prod = ctx.settings.postgres_target()
        scratch = type(prod)(
            host="127.0.0.1",
            port=port,
            user=prod.user,
            dbname=prod.dbname or "postgres",
            password=prod.password,
            bin_dir=prod.bin_dir,
        )
        counts = pgcompare.restored_counts(scratch, result)
        from rfbackup.sources.postgres.dump import connect

        with connect(scratch, autocommit=True) as conn:
            row = conn.execute("SELECT txid_snapshot_xmin(txid_current_snapshot())").fetchone()
        next_xid = int(row[0]) if row else None
        pgcompare.compare_with_production(
            scratch,
            prod.with_dbname(prod.dbname or "postgres"),
            counts,
            next_xid,
            ctx.sample_rows,
            result,
            recovered_cluster=True,
        )


register(PitrCheck())
