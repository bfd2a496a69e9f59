"""Verification covers more than table rows: large objects, sequences, materialized views,
and inherited tables counted with ONLY. A restore that differs in any of them is refused."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Env, rewrite_dump, table_checksums
from manifest_doc import pop_sidecar

from rfbackup.sandbox.postgres import PG_BIN

EXTRAS = """
CREATE SEQUENCE counter;
SELECT nextval('counter') FROM generate_series(1, 3);
CREATE SEQUENCE unused START 100;
SELECT lo_from_bytea(0, 'hello');
SELECT lo_from_bytea(0, convert_to(repeat('x', 100000), 'UTF8'));
CREATE MATERIALIZED VIEW even_notes AS SELECT id FROM notes WHERE id % 2 = 0;
CREATE MATERIALIZED VIEW never_filled AS SELECT id FROM notes WITH NO DATA;
CREATE MATERIALIZED VIEW recent_notes AS
    SELECT id FROM notes WHERE created_at > now() - interval '100 years';
CREATE TABLE parent (id int, v text);
CREATE TABLE child () INHERITS (parent);
INSERT INTO parent VALUES (1, 'a'), (2, 'b'), (3, 'c');
INSERT INTO child VALUES (4, 'd'), (5, 'e');
"""


@pytest.fixture
def extras(env: Env) -> Env:
    env.sql(EXTRAS)
    return env


def backup(env: Env) -> str:
    r = env.run("backup", "postgres")
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def large_objects(env: Env, dbname: str) -> str:
    return env.sql(
        "SELECT string_agg(md5(lo_get(oid)), ',' ORDER BY oid) FROM pg_largeobject_metadata", dbname
    )


def test_round_trip_records_and_checks_everything(extras: Env) -> None:
    env = extras
    even = int(env.sql("SELECT count(*) FROM notes WHERE id % 2 = 0"))
    env.sql(
        "INSERT INTO notes SELECT id + 1000000, run_id, author, body, created_at FROM notes LIMIT 2"
    )
    # even_notes is now stale: the restore refreshes it, so its query's count is what counts
    fresh = int(env.sql("SELECT count(*) FROM notes WHERE id % 2 = 0"))
    assert fresh != even
    name = backup(env)
    m = json.loads((env.backups / f"{name}.manifest.json").read_text())
    assert m["source"]["row_counts"]["public.parent"] == 3  # ONLY: its own rows, not the child's
    assert m["source"]["row_counts"]["public.child"] == 2
    checks = m["source"]["checks"]
    assert checks["large_objects"] == {"count": 2, "bytes": 100005}
    assert checks["sequences"]["public.counter"] == {"last_value": 3, "is_called": True}
    assert checks["sequences"]["public.unused"] == {"last_value": 100, "is_called": False}
    # never_filled is not populated; recent_notes depends on the time: populated, not counted
    assert checks["matviews"] == {"public.even_notes": fresh, "public.recent_notes": None}

    before = table_checksums(env.pg.dsn(env.dbname))
    lobs = large_objects(env, env.dbname)
    env.sql(
        "DELETE FROM notes; SELECT setval('counter', 50);"
        " SELECT lo_unlink(min(oid)) FROM pg_largeobject_metadata"
    )
    r = env.run("restore", name, "--yes")
    assert r.returncode == 0, r.stderr
    assert "2 large objects, 2 sequences and 2 materialized views match too" in r.stderr
    assert table_checksums(env.pg.dsn(env.dbname)) == before
    assert large_objects(env, env.dbname) == lobs
    assert env.sql("SELECT last_value || ' ' || is_called FROM counter") == "3 true"
    assert env.sql("SELECT count(*) FROM even_notes") == str(fresh)
    assert env.sql("SELECT relispopulated FROM pg_class WHERE relname = 'never_filled'") == "f"
    assert env.sql("SELECT relispopulated FROM pg_class WHERE relname = 'recent_notes'") == "t"


def _change(old: bytes, new: bytes) -> Callable[[bytes], bytes]:
    def change(sql: bytes) -> bytes:
        assert sql.count(old) == 1, old
        return sql.replace(old, new)

    return change


DIFFERENCES = {
    "sequence value": (
        _change(b"setval('public.counter', 3, true)", b"setval('public.counter', 4, true)"),
        "sequence public.counter is at 4",
    ),
    "sequence is_called": (
        _change(b"setval('public.counter', 3, true)", b"setval('public.counter', 3, false)"),
        "sequence public.counter is at 3 (is_called False)",
    ),
    "large object size": (
        _change(b"'\\x68656c6c6f'", b"'\\x68656c6c6f21'"),
        "large objects: 2 (100006 bytes), backup had 2 (100005 bytes)",
    ),
    "one large object more": (
        _change(
            b"--\n-- PostgreSQL database dump complete",
            b"SELECT pg_catalog.lo_create('999999');\n--\n-- PostgreSQL database dump complete",
        ),
        "large objects: 3 (100005 bytes), backup had 2 (100005 bytes)",
    ),
    "matview not refreshed": (
        _change(b"REFRESH MATERIALIZED VIEW public.even_notes;", b""),
        "materialized view public.even_notes missing or not populated",
    ),
    "matview rows": (
        _change(b"% (2)::bigint) = 0)", b"% (3)::bigint) = 0)"),
        "materialized view public.even_notes has",
    ),
    "row moved to the parent": (
        lambda sql: sql.replace(b"\n4\td\n", b"\n", 1).replace(b"3\tc\n", b"3\tc\n4\td\n", 1),
        "public.parent has 4 rows, backup had 3",
    ),
}


@pytest.mark.parametrize("difference", list(DIFFERENCES))
def test_a_restore_that_differs_is_refused_before_the_swap(extras: Env, difference: str) -> None:
    env = extras
    name = backup(env)
    change, message = DIFFERENCES[difference]
    rewrite_dump(env, name, change)
    before = (env.databases(), table_checksums(env.pg.dsn(env.dbname)))
    lobs = large_objects(env, env.dbname)
    r = env.run("restore", name, "--yes")
    assert r.returncode == 9, r.stderr
    assert "does not match the backup" in r.stderr and message in r.stderr
    assert (env.databases(), table_checksums(env.pg.dsn(env.dbname))) == before
    assert large_objects(env, env.dbname) == lobs


def test_an_old_manifest_without_these_checks_still_restores(extras: Env) -> None:
    env = extras
    name = backup(env)
    path = env.backups / f"{name}.manifest.json"
    m = json.loads(path.read_text())
    del m["source"]["checks"]
    pop_sidecar(m, "db_properties")
    m["source"]["row_counts"]["public.parent"] = (
        5  # old manifests counted a parent with its children
    )
    path.write_text(json.dumps(m))
    r = env.run("restore", name, "--yes")
    assert r.returncode == 0, r.stderr
    assert "row counts match the manifest" in r.stderr


def test_a_failure_after_the_large_objects_commit_keeps_the_database(extras: Env) -> None:
    """pg_dump's own BEGIN/COMMIT around large objects ends psql's single transaction: the
    load is not atomic, and the side database is what keeps the live one safe."""
    env = extras
    name = backup(env)
    rewrite_dump(env, name, _change(b"COMMIT;\n", b"COMMIT;\nSELECT 1/0;\n"))
    before = (env.databases(), table_checksums(env.pg.dsn(env.dbname)))
    r = env.run("restore", name, "--yes")
    assert r.returncode == 9, r.stderr
    assert "ERROR:  division by zero" in r.stderr
    assert (env.databases(), table_checksums(env.pg.dsn(env.dbname))) == before


def test_a_sequence_used_during_the_dump_is_checked_against_its_range() -> None:
    from rfbackup.sources.postgres.verify_counts import compare

    expected = {"sequences": {"s": {"last_value": 10, "is_called": True, "moved_to": [15, True]}}}

    def restored(value: int) -> dict[str, object]:
        return {
            "large_objects": {"count": 0, "bytes": 0},
            "sequences": {"s": [value, True]},
            "matviews": {},
        }

    assert compare(expected, restored(12)) == []
    assert compare(expected, restored(15)) == []
    assert compare(expected, restored(16)) != []
    assert compare(expected, restored(9)) != []


def test_a_sequence_used_while_pg_dump_runs_restores(extras: Env, tmp_path: Path) -> None:
    """The sequence moves between the first reading, pg_dump's, and the last one."""
    env = extras
    bindir = tmp_path / "bin"
    bindir.mkdir()
    bump = f'"{PG_BIN}/psql" -X -q -c "SELECT nextval(\'counter\') FROM generate_series(1, 5)"'
    (bindir / "pg_dump").write_text(
        "#!/bin/sh\n"
        f'[ "$1" = --version ] && exec "{PG_BIN}/pg_dump" --version\n'
        f'{bump} >/dev/null\n"{PG_BIN}/pg_dump" "$@" || exit $?\n{bump} >/dev/null\n'
    )
    (bindir / "pg_dump").chmod(0o755)
    for tool in ("pg_dumpall", "psql", "pg_restore"):
        (bindir / tool).symlink_to(PG_BIN / tool)
    r = env.run("backup", "postgres", RFBACKUP_PG_BIN=str(bindir))
    assert r.returncode == 0, r.stderr
    name = r.stdout.strip()
    seq = json.loads((env.backups / f"{name}.manifest.json").read_text())["source"]["checks"][
        "sequences"
    ]
    assert seq["public.counter"] == {"last_value": 3, "is_called": True, "moved_to": [13, True]}
    r = env.run("restore", name, "--yes")
    assert r.returncode == 0, r.stderr
    assert env.sql("SELECT last_value FROM counter") == "8"  # what pg_dump saw
