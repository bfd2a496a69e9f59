"""Proving two databases hold the same data: an md5 over every row of every table."""

from __future__ import annotations

import psycopg
from psycopg import sql


def table_checksums(dsn: str) -> dict[str, str]:
    """``{"public.runs": "<rows>:<md5>"}`` for every user table, rows in a stable order."""
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables"
            " WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
        )
        tables = [r[0] for r in cur.fetchall()]
        out = {}
        for table in tables:
            cur.execute(
                sql.SQL(
                    "SELECT count(*), md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), ''))"
                    " FROM {} x"
                ).format(sql.SQL(table))
            )
            row = cur.fetchone()
            assert row is not None
            out[table] = f"{row[0]}:{row[1]}"
        return out
