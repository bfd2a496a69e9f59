"""Finding the rows of a table that a side cluster has and production lacks (or holds
differently), by primary key; exporting them as SQL or CSV; merging them in one transaction.
Values travel as text with their column's type cast, so every type round-trips."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from rfbackup.drill.sampling import session
from rfbackup.errors import ConfigError

COLUMNS_SQL = """
SELECT a.attname::text, format_type(a.atttypid, a.atttypmod),
       a.attnum = ANY(i.indkey), a.attgenerated <> ''
FROM pg_attribute a
JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""


@dataclass
class Table:
    name: str
    columns: list[str]
    types: list[str]
    key: list[str]
    generated: set[str] = field(default_factory=set)
    schema: str = "public"
    relname: str = ""

    @classmethod
    def read(cls, conn: psycopg.Connection[Any], name: str) -> Table:
        try:
            rows = conn.execute(COLUMNS_SQL, (name,)).fetchall()
        except psycopg.errors.UndefinedTable:
            raise ConfigError(f"no table {name!r} in the recovered database") from None
        if not rows:
            raise ConfigError(f"table {name!r} has no primary key: rows cannot be matched")
        where = conn.execute(
            "SELECT n.nspname::text, c.relname::text FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = %s::regclass",
            (name,),
        ).fetchone()
        assert where is not None
        return cls(
            name,
            [r[0] for r in rows],
            [r[1] for r in rows],
            [r[0] for r in rows if r[2]],
            {r[0] for r in rows if r[3]},
            where[0],
            where[1],
        )

    @property
    def ident(self) -> sql.Composable:
        return sql.Identifier(self.schema, self.relname)

    def select(self) -> sql.Composed:
        return sql.SQL("SELECT {} FROM ONLY {}").format(
            sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c)) for c in self.columns),
            self.ident,
        )


@dataclass
class Diff:
    table: Table
    missing: list[tuple[Any, ...]] = field(default_factory=list)  # not in production
    different: list[tuple[Any, ...]] = field(default_factory=list)  # same key, other values


def diff(side: psycopg.Connection[Any], prod: psycopg.Connection[Any], name: str) -> Diff:
    session(side)
    session(prod)
    table = Table.read(side, name)
    key_at = [table.columns.index(k) for k in table.key]
    current = {tuple(r[i] for i in key_at): tuple(r) for r in prod.execute(table.select())}
    out = Diff(table)
    for row in side.execute(table.select()):
        have = current.get(tuple(row[i] for i in key_at))
        if have is None:
            out.missing.append(tuple(row))
        elif have != tuple(row):
            out.different.append(tuple(row))
    return out


def _writable(table: Table) -> list[int]:
    """Positions of the columns an INSERT may name (generated columns are computed)."""
    return [i for i, c in enumerate(table.columns) if c not in table.generated]


def _values(table: Table, row: tuple[Any, ...] | None) -> sql.Composable:
    """``%s::type, ...`` placeholders, or the row's values as literals."""
    return sql.SQL(", ").join(
        (sql.Literal(row[i]) if row is not None else sql.SQL("%s"))
        + sql.SQL("::")
        + sql.SQL(table.types[i])
        for i in _writable(table)
    )


def params(table: Table, row: tuple[Any, ...]) -> list[Any]:
    return [row[i] for i in _writable(table)]


def insert(table: Table, overwrite: bool, row: tuple[Any, ...] | None = None) -> sql.Composed:
    stmt = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        table.ident,
        sql.SQL(", ").join(sql.Identifier(table.columns[i]) for i in _writable(table)),
        _values(table, row),
    )
    if not overwrite:
        return stmt + sql.SQL(" ON CONFLICT DO NOTHING")
    updates = [c for c in table.columns if c not in table.key and c not in table.generated]
    return stmt + sql.SQL(" ON CONFLICT ({}) DO UPDATE SET {}").format(
        sql.SQL(", ").join(sql.Identifier(k) for k in table.key),
        sql.SQL(", ").join(
            sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in updates
        ),
    )


def export_sql(conn: psycopg.Connection[Any], d: Diff, overwrite: bool) -> str:
    rows = d.missing + (d.different if overwrite else [])
    lines = [f"-- {len(rows)} row(s) of {d.table.name} recovered by rfbackup dr undelete", "BEGIN;"]
    for row in rows:
        lines.append(insert(d.table, overwrite, row).as_string(conn) + ";")
    return "\n".join([*lines, "COMMIT;", ""])


def export_csv(d: Diff, overwrite: bool) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(d.table.columns)
    for row in d.missing + (d.different if overwrite else []):
        w.writerow(["\\N" if v is None else v for v in row])
    return buf.getvalue()


def merge(prod: psycopg.Connection[Any], diffs: list[Diff], overwrite: bool) -> dict[str, int]:
    """Insert every missing row (and with ``overwrite`` replace the different ones) in ONE
    transaction: all of it lands, or none."""
    done: dict[str, int] = {}
    with prod.transaction():
        for d in diffs:
            rows = d.missing + (d.different if overwrite else [])
            n = 0
            with prod.cursor() as cur:
                for row in rows:
                    cur.execute(insert(d.table, overwrite), params(d.table, row))
                    n += cur.rowcount
            done[d.table.name] = n
    return done
