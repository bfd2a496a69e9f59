"""Comparing a restored PostgreSQL database with production, row by row, read-only.

Which production rows can be compared: those **unchanged since the backup**. PostgreSQL
tells us without any application column: a row's ``xmin`` is the transaction that wrote
this version of it. Every transaction before the backup's snapshot ``xmin`` had finished
when the backup was taken, so a production row whose ``xmin`` precedes it was in the
backup exactly as it is now; a row updated (or deleted and inserted again) since has a newer
``xmin`` and is left out. A restored row that differs from such a row, or is missing, is a
real defect of the backup. Transaction ids are compared modulo 2^32 like PostgreSQL does
(``TransactionIdPrecedes``); a row whose 32-bit ``xmin`` is ambiguous is left out, never
counted against the backup.

Production is only read: a READ ONLY transaction; reports name keys and columns, never values.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

SESSION = (
    "SET TimeZone = 'UTC'",
    "SET DateStyle = 'ISO, YMD'",
    "SET IntervalStyle = 'postgres'",
    "SET extra_float_digits = 3",
    "SET bytea_output = 'hex'",
)
FULL_SCAN_ROWS = 20_000  # up to this estimate, sample from every row
SHOWN = 5  # differing keys named per table

SHAPES_SQL = """
SELECT format('%I.%I', n.nspname, c.relname),
       array_agg(a.attname::text ORDER BY k.ord),
       array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY k.ord),
       (SELECT array_agg(b.attname::text ORDER BY b.attnum) FROM pg_attribute b
         WHERE b.attrelid = c.oid AND b.attnum > 0 AND NOT b.attisdropped),
       max(c.reltuples)::bigint
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
GROUP BY 1, c.oid
ORDER BY 1
"""


@dataclass(frozen=True)
class Shape:
    table: str  # schema.table, quoted as needed
    key: tuple[str, ...]
    key_types: tuple[str, ...]
    columns: tuple[str, ...]
    estimate: int


@dataclass
class TableSample:
    table: str
    compared: int = 0
    skipped_changed: int = 0  # sampled rows changed in production since the backup
    missing: int = 0
    different: int = 0
    examples: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.missing and not self.different


def precedes(xid32: int, before64: int) -> bool:
    """Did transaction ``xid32`` (a row's 32-bit xmin) start before ``before64``?"""
    if xid32 in (1, 2):  # bootstrap and frozen: older than anything
        return True
    if xid32 < 3:
        return False
    delta = (before64 % 2**32 - xid32) % 2**32
    return 0 < delta < 2**31


def session(conn: psycopg.Connection[Any]) -> None:
    for stmt in SESSION:
        conn.execute(stmt)


def shapes(conn: psycopg.Connection[Any]) -> dict[str, Shape]:
    rows = conn.execute(SHAPES_SQL).fetchall()
    return {r[0]: Shape(r[0], tuple(r[1]), tuple(r[2]), tuple(r[3]), int(r[4] or 0)) for r in rows}


def counts(conn: psycopg.Connection[Any], tables: list[str]) -> dict[str, int]:
    out = {}
    for table in tables:
        row = conn.execute(
            sql.SQL("SELECT count(*) FROM ONLY {}").format(sql.SQL(table))
        ).fetchone()
        out[table] = int(row[0]) if row else 0
    return out


def _as_text(names: tuple[str, ...]) -> sql.Composable:
    return sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(n)) for n in names)


def committed_in(conn: psycopg.Connection[Any], before: int) -> Callable[[set[int]], set[int]]:
    """For a recovered cluster whose next transaction id is ``before``: which of some
    32-bit xids committed there. A transaction still running at the recovery point has an
    older id but was rolled back by the recovery, so its rows are not in the copy."""
    epoch, low = divmod(before, 2**32)

    def committed(xids: set[int]) -> set[int]:
        full = {x: (epoch << 32 | x) if x <= low else ((epoch - 1) << 32 | x) for x in xids}
        ask = [v for v in full.values() if v > 2]
        rows = conn.execute(
            "SELECT x::text, txid_status(x) FROM unnest(%s::bigint[]) AS x", (ask,)
        ).fetchall()
        status = {int(r[0]): r[1] for r in rows}
        # NULL: too old for the commit log, so finished long ago (visible: committed).
        return {x for x, v in full.items() if x in (1, 2) or status.get(v) in ("committed", None)}

    return committed


def _candidates(
    conn: psycopg.Connection[Any],
    shape: Shape,
    n: int,
    before: int,
    rng: random.Random,
    committed: Callable[[set[int]], set[int]] | None,
) -> tuple[list[tuple[str, ...]], int]:
    """Up to ``n`` random primary keys of rows unchanged since ``before``; and how many
    sampled rows were left out as changed since."""
    sampling: sql.Composable = sql.SQL("")
    if shape.estimate > FULL_SCAN_ROWS:
        percent = min(100.0, 100.0 * 4 * n / shape.estimate)
        sampling = sql.SQL(" TABLESAMPLE BERNOULLI ({}) REPEATABLE ({})").format(
            sql.Literal(percent), sql.Literal(rng.randrange(2**31))
        )
    query = sql.SQL("SELECT xmin::text, {} FROM ONLY {}{}").format(
        _as_text(shape.key), sql.SQL(shape.table), sampling
    )
    rows = conn.execute(query).fetchall()
    old = [(int(r[0]), tuple(r[1:])) for r in rows if precedes(int(r[0]), before)]
    if committed is not None and old:
        done = committed({x for x, _ in old})
        old = [(x, key) for x, key in old if x in done]
    unchanged = [key for _, key in old]
    rng.shuffle(unchanged)
    return unchanged[:n], len(rows) - len(unchanged)


def _fetch(
    conn: psycopg.Connection[Any], shape: Shape, keys: list[tuple[str, ...]]
) -> dict[tuple[str, ...], tuple[Any, ...]]:
    if not keys:
        return {}
    one = sql.SQL("({})").format(
        sql.SQL(", ").join(sql.SQL("%s::") + sql.SQL(t) for t in shape.key_types)
    )
    query = sql.SQL("SELECT {}, {} FROM ONLY {} WHERE ({}) IN (VALUES {})").format(
        _as_text(shape.key),
        _as_text(shape.columns),
        sql.SQL(shape.table),
        sql.SQL(", ").join(sql.Identifier(k) for k in shape.key),
        sql.SQL(", ").join([one] * len(keys)),
    )
    params = [v for key in keys for v in key]
    width = len(shape.key)
    return {tuple(r[:width]): tuple(r[width:]) for r in conn.execute(query, params).fetchall()}


def compare_table(
    prod: psycopg.Connection[Any],
    restored: psycopg.Connection[Any],
    shape: Shape,
    n: int,
    before: int,
    rng: random.Random,
    committed: Callable[[set[int]], set[int]] | None = None,
) -> TableSample:
    """Sample ``n`` rows of ``shape`` unchanged in production since ``before`` and compare
    them field by field with the restored copy."""
    result = TableSample(shape.table)
    keys, result.skipped_changed = _candidates(prod, shape, n, before, rng, committed)
    wanted = _fetch(prod, shape, keys)
    got = _fetch(restored, shape, keys)
    examples: list[str] = []
    for key, values in wanted.items():
        result.compared += 1
        label = ",".join(key)
        if key not in got:
            result.missing += 1
            examples.append(f"{label}: missing")
            continue
        diff = [c for c, a, b in zip(shape.columns, values, got[key], strict=True) if a != b]
        if diff:
            result.different += 1
            examples.append(f"{label}: {', '.join(diff)} differ")
    result.examples = tuple(examples[:SHOWN])
    return result
