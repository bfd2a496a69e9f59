"""What a restore must reproduce besides table rows: large objects, sequences, and populated
materialized views. Taken in the dump's own snapshot, checked in the restored database.

- large objects: how many, and their total size (each object's size by seeking to its end,
  so no object data is read);
- sequences: ``last_value`` and ``is_called``. Sequences are not transactional, so they are
  read just before pg_dump starts and again after it exits: pg_dump's own reading lies
  between the two, and an idle database gives one exact value;
- populated materialized views: pg_dump restores them with ``REFRESH``, so the restored row
  count is the count of the view's query over the snapshot's data (not of the possibly
  stale stored rows).
"""

from __future__ import annotations

import re
from typing import Any

import psycopg
from psycopg import sql

INV_READ = 0x40000
_USER_RELS = """
SELECT c.oid, format('%I.%I', n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = {kind} {extra}
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 2
"""


def _relations(cur: psycopg.Cursor[Any], kind: str, extra: str = "") -> list[tuple[int, str]]:
    cur.execute(_USER_RELS.format(kind=f"'{kind}'", extra=extra))
    return [(int(oid), str(name)) for oid, name in cur.fetchall()]


def sequences(cur: psycopg.Cursor[Any]) -> dict[str, list[Any]]:
    """{schema.sequence: [last_value, is_called]}"""
    names = [name for _, name in _relations(cur, "S")]
    if not names:
        return {}
    query = sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT {}, last_value, is_called FROM {}").format(sql.Literal(n), sql.SQL(n))
        for n in names
    )
    cur.execute(query)
    return {str(name): [int(value), bool(called)] for name, value, called in cur.fetchall()}


def large_objects(cur: psycopg.Cursor[Any]) -> dict[str, int]:
    cur.execute(
        "SELECT count(*), coalesce(sum(lo_lseek64(lo_open(oid, %s), 0, 2)), 0)"
        " FROM pg_largeobject_metadata",
        (INV_READ,),
    )
    row = cur.fetchone()
    count, size = row if row else (0, 0)
    return {"count": int(count), "bytes": int(size)}


# A query that depends on the moment or on chance counts differently at restore time.
_UNSTABLE = re.compile(
    r"\b(now|clock_timestamp|statement_timestamp|transaction_timestamp|timeofday|random"
    r"|gen_random_uuid|current_date|current_time|current_timestamp|localtime|localtimestamp)\b",
    re.IGNORECASE,
)
_VOLATILE_CALLS = """
SELECT EXISTS (SELECT 1 FROM pg_rewrite r
               JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                               AND d.refclassid = 'pg_proc'::regclass
               JOIN pg_proc p ON p.oid = d.refobjid
               WHERE r.ev_class = %s AND p.provolatile = 'v')
"""


def matview_counts(cur: psycopg.Cursor[Any], by_definition: bool) -> dict[str, int | None]:
    """Rows of every populated materialized view: of its query (at backup time) or of its
    stored content (the restored copy, just refreshed by the restore). A query that depends
    on the time or calls a volatile function gets None: it is only checked to be populated."""
    out: dict[str, int | None] = {}
    for oid, name in _relations(cur, "m", "AND c.relispopulated"):
        if by_definition:
            cur.execute("SELECT pg_get_viewdef(%s::oid)", (oid,))
            row = cur.fetchone()
            body = str(row[0] if row else "").strip().rstrip(";")
            cur.execute(_VOLATILE_CALLS, (oid,))
            volatile = cur.fetchone()
            if _UNSTABLE.search(body) or (volatile and volatile[0]):
                out[name] = None
                continue
            query = sql.SQL("SELECT count(*) FROM ({}) AS q").format(sql.SQL(body))
        else:
            query = sql.SQL("SELECT count(*) FROM {}").format(sql.SQL(name))
        cur.execute(query)
        counted = cur.fetchone()
        out[name] = int(counted[0]) if counted else 0
    return out


def snapshot_checks(cur: psycopg.Cursor[Any]) -> dict[str, Any]:
    """Large objects and materialized views, in the dump's snapshot (sequences: see above)."""
    return {
        "row_counts_only": True,
        "large_objects": large_objects(cur),
        "matviews": matview_counts(cur, by_definition=True),
    }


def bracket(before: dict[str, list[Any]], after: dict[str, list[Any]]) -> dict[str, Any]:
    """Each sequence's value before pg_dump, and where it had moved to by the end (if it did)."""
    out: dict[str, Any] = {}
    for name, (value, called) in before.items():
        entry: dict[str, Any] = {"last_value": value, "is_called": called}
        if name in after and after[name] != [value, called]:
            entry["moved_to"] = after[name]
        out[name] = entry
    return out


def restored_checks(cur: psycopg.Cursor[Any]) -> dict[str, Any]:
    return {
        "large_objects": large_objects(cur),
        "sequences": sequences(cur),
        "matviews": matview_counts(cur, by_definition=False),
    }


def compare(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """Human-readable differences; empty when the restore reproduced everything recorded."""
    problems: list[str] = []
    want_lo, got_lo = expected.get("large_objects"), actual["large_objects"]
    if want_lo is not None and want_lo != got_lo:
        problems.append(
            f"large objects: {got_lo['count']} ({got_lo['bytes']} bytes), "
            f"backup had {want_lo['count']} ({want_lo['bytes']} bytes)"
        )
    for name, seq in sorted(expected.get("sequences", {}).items()):
        got = actual["sequences"].get(name)
        if got is None:
            problems.append(f"sequence {name} missing")
            continue
        value, called = got
        if "moved_to" in seq:  # used during the dump: pg_dump read it in between
            low, high = sorted((seq["last_value"], seq["moved_to"][0]))
            ok = low <= value <= high
        else:
            ok = [value, called] == [seq["last_value"], seq["is_called"]]
        if not ok:
            problems.append(
                f"sequence {name} is at {value} (is_called {called}), "
                f"backup had {seq['last_value']} (is_called {seq['is_called']})"
            )
    for name, rows in sorted(expected.get("matviews", {}).items()):
        got_rows = actual["matviews"].get(name)
        if got_rows is None:
            problems.append(f"materialized view {name} missing or not populated")
        elif rows is not None and got_rows != rows:
            problems.append(f"materialized view {name} has {got_rows} rows, backup had {rows}")
    return problems
