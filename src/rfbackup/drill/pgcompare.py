"""The checks both PostgreSQL drills run on a restored database: consistency (every table
readable to the end), row counts against production (informational: production has moved
on), and sampled rows compared field by field with production (see sampling.py)."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

import psycopg

from rfbackup.drill import sampling
from rfbackup.errors import SourceError
from rfbackup.logs import log
from rfbackup.sources.postgres.dump import connect, list_tables

if TYPE_CHECKING:
    from rfbackup.drill.model import CheckResult
    from rfbackup.sources.postgres.target import PostgresTarget


def restored_counts(restored: PostgresTarget, result: CheckResult) -> dict[str, int]:
    """Count every table of the restored database: reads each heap to its end."""
    with connect(restored, autocommit=True) as conn:
        tables = list_tables(conn.cursor())
        found = sampling.counts(conn, tables)
    result.facts["tables"] = len(found)
    result.facts["rows"] = sum(found.values())
    result.check("tables readable", True, f"{len(found)} tables, {sum(found.values())} rows read")
    return found


def _production(prod: PostgresTarget) -> psycopg.Connection[Any] | None:
    try:
        conn = connect(prod, autocommit=False)
    except SourceError as exc:
        log.warning("production is not reachable (%s): only the manifest checks ran", exc)
        return None
    conn.read_only = True  # the drill never writes to production
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    return conn


def compare_with_production(
    restored: PostgresTarget,
    prod: PostgresTarget,
    restored_counts_: dict[str, int],
    before_xid: int | None,
    sample_rows: int,
    result: CheckResult,
    recovered_cluster: bool = False,
) -> None:
    """``before_xid``: the backup's snapshot xmin (logical), or the recovered cluster's next
    transaction id (PITR, with ``recovered_cluster``: then the transactions it rolled back
    are left out too)."""
    conn = _production(prod)
    if conn is None:
        result.note("production", f"{prod.display} not reachable: not compared")
        return
    with conn:
        sampling.session(conn)
        prod_counts = sampling.counts(conn, list(restored_counts_))
        moved = {
            t: (restored_counts_[t], c) for t, c in prod_counts.items() if c != restored_counts_[t]
        }
        if moved:
            shown = "; ".join(f"{t} {a} -> {b}" for t, (a, b) in list(moved.items())[:5])
            result.note(
                "row counts vs production",
                f"{len(moved)} of {len(prod_counts)} tables differ (production moved on): {shown}",
            )
        else:
            result.note("row counts vs production", f"all {len(prod_counts)} tables equal")
        result.facts["row_counts_vs_production"] = {
            t: {"restored": a, "production": b} for t, (a, b) in moved.items()
        }
        if before_xid is None:
            result.note(
                "sampled rows",
                "not compared: the backup does not record its snapshot (an older rfbackup took it)",
            )
            return
        if sample_rows <= 0:
            result.note("sampled rows", "not compared (--sample 0)")
            return
        _compare_samples(conn, restored, before_xid, sample_rows, result, recovered_cluster)


def _compare_samples(
    prod: psycopg.Connection[Any],
    restored: PostgresTarget,
    before_xid: int,
    sample_rows: int,
    result: CheckResult,
    recovered_cluster: bool,
) -> None:
    rng = random.Random()
    with connect(restored, autocommit=True) as rconn:
        sampling.session(rconn)
        committed = sampling.committed_in(rconn, before_xid) if recovered_cluster else None
        prod_shapes = sampling.shapes(prod)
        restored_shapes = sampling.shapes(rconn)
        samples = []
        for table, shape in prod_shapes.items():
            other = restored_shapes.get(table)
            if other is None or (other.key, other.key_types, other.columns) != (
                shape.key,
                shape.key_types,
                shape.columns,
            ):
                result.note("sampled rows", f"{table}: schema differs from production, skipped")
                continue
            samples.append(
                sampling.compare_table(prod, rconn, shape, sample_rows, before_xid, rng, committed)
            )
    compared = sum(s.compared for s in samples)
    bad = [s for s in samples if not s.ok]
    result.facts["sampled_rows"] = {
        s.table: {
            "compared": s.compared,
            "changed_in_production_since": s.skipped_changed,
            "missing": s.missing,
            "different": s.different,
        }
        for s in samples
    }
    if bad:
        detail = "; ".join(f"{s.table}: {', '.join(s.examples)}" for s in bad)
        result.check("sampled rows", False, f"{compared} rows compared, mismatches: {detail}")
    else:
        changed = sum(s.skipped_changed for s in samples)
        result.check(
            "sampled rows",
            True,
            f"{compared} rows in {len(samples)} tables equal to production, field by field"
            + (
                f" ({changed} sampled rows changed in production since: left out)"
                if changed
                else ""
            ),
        )
