"""``rfbackup pitr find``: when did a table lose its rows? Reads the archived WAL with pg_waldump.

The table name is mapped to its file (tablespace/database/relfilenode) through a connection to
the live server. Segments are fetched from the repository (sha256-verified, decrypted) into a
private temporary folder, pg_waldump decodes the heap and transaction records, and each
transaction that deleted (updated, inserted) rows of that file is reported with its commit time
and the recovery target that stops just before it.

Limits: the relfilenode changes after TRUNCATE, VACUUM FULL, CLUSTER or a table rewrite, so
changes made before such a rewrite are found only with ``--relfilenode`` (the old number, from
the server log or an older backup). A TRUNCATE or DROP itself leaves no per-row records: look
for it in the server log. Only WAL that is archived is read: run ``SELECT pg_switch_wal()`` on
the live server first to archive the current segment.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rfbackup.config import Settings
from rfbackup.errors import ConfigError, NotFound, SourceError
from rfbackup.pitr.archive import Archived, WalArchive
from rfbackup.pitr.walnames import Segment

OPS = {
    "delete": ("Heap", ("DELETE",)),
    "update": ("Heap", ("UPDATE", "HOT_UPDATE")),
    "insert": ("Heap", ("INSERT", "INSERT+INIT")),
}
RECORD = re.compile(
    r"^rmgr: (?P<rmgr>\w+)\s+len \(rec/tot\):\s+\d+/\s*\d+, tx:\s+(?P<xid>\d+), "
    r"lsn: (?P<lsn>[0-9A-F]+/[0-9A-F]+), prev [0-9A-F/]+, desc: (?P<desc>.*)$"
)
COMMIT = re.compile(r"^(COMMIT|ABORT) (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) UTC")

RELATION_SQL = """
SELECT c.relname, n.nspname,
       coalesce(nullif(c.reltablespace, 0), d.dattablespace), d.oid, pg_relation_filenode(c.oid),
       (SELECT timeline_id FROM pg_control_checkpoint())
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
     pg_database d
WHERE c.oid = %s::regclass AND d.datname = current_database()
"""


@dataclass
class Change:
    xid: int
    records: int = 0
    first_lsn: str = ""
    commit_lsn: str | None = None
    committed_at: datetime | None = None
    aborted: bool = False

    def target_time(self) -> datetime | None:
        """The latest moment that excludes this transaction: recovery stops before the first
        commit later than the target, so one microsecond before its commit."""
        return self.committed_at - timedelta(microseconds=1) if self.committed_at else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "xid": self.xid,
            "records": self.records,
            "first_lsn": self.first_lsn,
            "commit_lsn": self.commit_lsn,
            "committed_at": self.committed_at,
            "aborted": self.aborted,
            "target_time": self.target_time(),
        }


@dataclass
class Found:
    table: str
    relation: str  # tablespace/database/relfilenode
    op: str
    timeline: int
    segments: list[str] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "relation": self.relation,
            "op": self.op,
            "timeline": self.timeline,
            "segments": self.segments,
            "transactions": [c.to_dict() for c in self.changes],
        }


def relation(settings: Settings, table: str) -> tuple[str, str, int]:
    """(schema.table, "tablespace/database/relfilenode", timeline) from the live server."""
    import psycopg

    from rfbackup.sources.postgres.dump import connect

    with connect(settings.postgres_target(), autocommit=True) as conn:
        try:
            row = conn.execute(RELATION_SQL, (table,)).fetchone()
        except psycopg.errors.UndefinedTable:
            raise NotFound(f"no table {table!r} in {settings.postgres_target().display}") from None
    assert row is not None
    name, schema, spc, db, filenode, timeline = row
    if filenode is None:
        raise ConfigError(f"{table} has no storage of its own (a view or partitioned table?)")
    return f"{schema}.{name}", f"{spc}/{db}/{filenode}", int(timeline)


def segments(archive: WalArchive, timeline: int, since: datetime | None) -> list[Archived]:
    """The archived segments of ``timeline``; with ``since``, only those archived after it (a
    segment is archived once full, so older ones hold only records from before ``since``)."""
    size = archive.segment_size()
    found = []
    for copy in archive.all():
        seg = Segment.parse(copy.name, size)
        if seg is None or seg.timeline != timeline:
            continue
        if since is not None and copy.modified < since:
            continue
        found.append(copy)
    return sorted(found, key=lambda c: c.name)


def runs(copies: list[Archived], size: int) -> Iterator[list[Archived]]:
    """Contiguous runs of segments: pg_waldump reads one run at a time."""
    run: list[Archived] = []
    for copy in copies:
        seg = Segment.parse(copy.name, size)
        assert seg is not None
        if run:
            prev = Segment.parse(run[-1].name, size)
            assert prev is not None
            if seg.number != prev.number + 1:
                yield run
                run = []
        run.append(copy)
    if run:
        yield run


def parse(lines: Iterable[str], rel: str, op: str) -> list[Change]:
    """Transactions with ``op`` records on ``rel``, with their commit (or abort) record."""
    rmgr, kinds = OPS[op]
    block = f"rel {rel} "
    changes: dict[int, Change] = {}
    for line in lines:
        m = RECORD.match(line)
        if m is None:
            continue
        xid = int(m["xid"])
        desc = m["desc"]
        if m["rmgr"] == rmgr and desc.split(" ", 1)[0] in kinds and block in line + " ":
            change = changes.setdefault(xid, Change(xid, first_lsn=m["lsn"]))
            change.records += 1
        elif m["rmgr"] == "Transaction" and xid in changes:
            c = COMMIT.match(desc)
            if c is not None:
                change = changes[xid]
                change.commit_lsn = m["lsn"]
                change.aborted = c.group(1) == "ABORT"
                change.committed_at = datetime.fromisoformat(c.group(2)).replace(tzinfo=UTC)
    return sorted(changes.values(), key=lambda c: (c.committed_at is None, c.committed_at))


def find(
    settings: Settings,
    table: str,
    op: str,
    since: datetime | None,
    relfilenode: int | None = None,
) -> Found:
    from rfbackup.sources.postgres import tools

    name, rel, timeline = relation(settings, table)
    if relfilenode is not None:
        rel = rel.rsplit("/", 1)[0] + f"/{relfilenode}"
    archive = WalArchive(settings.open_repository(), identities=settings.encryption.identities())
    copies = segments(archive, timeline, since)
    if not copies:
        raise NotFound(
            f"no archived WAL of timeline {timeline}"
            + (f" archived after {since.isoformat()}" if since else "")
            + ": run SELECT pg_switch_wal() on the server and retry"
        )
    waldump = tools.find("pg_waldump", settings.pg_bin)
    size = archive.segment_size()
    result = Found(name, rel, op, timeline, [c.name for c in copies])
    work = Path(tempfile.mkdtemp(prefix="rfbackup-find-"))  # mode 0700: WAL holds row data
    try:
        for run in runs(copies, size):
            for copy in run:
                archive.fetch(copy.name, work / copy.name)
            out = subprocess.run(
                [
                    waldump,
                    "--path",
                    str(work),
                    "--timeline",
                    str(timeline),
                    "--rmgr",
                    OPS[op][0],
                    "--rmgr",
                    "Transaction",
                    run[0].name,
                    run[-1].name,
                ],
                capture_output=True,
                text=True,
                env={**os.environ, "TZ": "UTC", "PGTZ": "UTC"},
                check=False,
            )
            if out.returncode != 0 and not out.stdout:
                raise SourceError(f"pg_waldump failed: {out.stderr.strip().splitlines()[-1]}")
            result.changes += parse(out.stdout.splitlines(), rel, op)
            for copy in run:
                (work / copy.name).unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if since is not None:
        result.changes = [
            c for c in result.changes if c.committed_at is None or c.committed_at >= since
        ]
    return result
