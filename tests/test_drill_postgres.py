"""``rfbackup drill`` on logical PostgreSQL backups, against the real server: passes on a
healthy backup (while production moves on), fails on a damaged backup and on a backup whose
row differs from production, and leaves no scratch database in any case, even when killed."""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path
from typing import Any

from conftest import Env, finish, rewrite_dump


def drill_databases(env: Env) -> list[str]:
    return sorted(d for d in env.databases() if d.startswith("rfbackup_drill_"))


def backup(env: Env) -> str:
    r = env.run("backup", "postgres", "--json")
    assert r.returncode == 0, r.stderr
    return str(json.loads(r.stdout)["name"])


def drill(env: Env, *args: str, **extra: str) -> tuple[int, dict[str, Any], str]:
    r = env.run("drill", "--component", "postgres", "--json", *args, **extra)
    doc = json.loads(r.stdout) if r.stdout.strip() else {}
    return r.returncode, doc, r.stderr


def component(doc: dict[str, Any]) -> dict[str, Any]:
    found: list[dict[str, Any]] = [c for c in doc["components"] if c["component"] == "postgres"]
    assert len(found) == 1
    return found[0]


def test_healthy_backup_passes_while_production_moves_on(env: Env, tmp_path: Path) -> None:
    name = backup(env)
    # Production moves on after the backup: a changed row, a new row. Neither is a defect.
    env.sql(
        "UPDATE projects SET owner = 'someone-else'"
        " WHERE id = (SELECT id FROM projects ORDER BY id LIMIT 1)"
    )
    env.sql("INSERT INTO notes SELECT max(id) + 1, min(run_id), 'x', 'y', now() FROM notes")
    metrics = tmp_path / "metrics"
    metrics.mkdir()

    code, doc, err = drill(
        env, "--report-dir", str(tmp_path / "reports"), RFBACKUP_METRICS__TEXTFILE_DIR=str(metrics)
    )

    assert code == 0, err
    pg = component(doc)
    assert doc["outcome"] == "passed" and pg["status"] == "passed"
    assert pg["backup"] == name and pg["sha256"]
    assert pg["rto_seconds"] > 0 and pg["rpo_seconds"] >= 0
    sampled = pg["facts"]["sampled_rows"]
    assert sampled["public.projects"]["changed_in_production_since"] == 1
    assert sum(t["compared"] for t in sampled.values()) > 100
    moved = pg["facts"]["row_counts_vs_production"]
    assert moved == {
        "public.notes": {
            "restored": moved["public.notes"]["restored"],
            "production": moved["public.notes"]["restored"] + 1,
        }
    }
    assert drill_databases(env) == []
    # The record: in the repository (drills/) and the report folder, JSON and Markdown.
    stored = sorted(p.name for p in (env.backups / "drills").iterdir())
    assert stored == [f"{doc['id']}.json", f"{doc['id']}.md"]
    text = (env.backups / "drills" / f"{doc['id']}.md").read_text()
    assert "PASSED" in text and name in text and "RTO" in text
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == [
        f"drill_{doc['id']}.json",
        f"drill_{doc['id']}.md",
    ]
    prom = (metrics / "rfbackup_development_postgres_drill.prom").read_text()
    assert re.search(r"^backup_restore_verified_timestamp\{.*\} \d", prom, re.M)
    assert re.search(r"^backup_drill_rto_seconds\{.*\} \d", prom, re.M)
    status = env.run("status", "--json")
    (pg_status,) = [
        c for c in json.loads(status.stdout)["components"] if c["component"] == "postgres"
    ]
    assert pg_status["last_drill"].startswith("passed ")
    # The report is not a backup: `list` does not show it.
    listed = json.loads(env.run("list", "--json").stdout)
    assert [e["name"] for e in listed] == [name]


def test_damaged_backup_fails_and_leaves_nothing(env: Env) -> None:
    name = backup(env)
    path = env.backups / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))

    code, doc, err = drill(env)

    assert code == 12, err
    pg = component(doc)
    assert pg["status"] == "failed" and doc["outcome"] == "failed"
    assert "corrupted" in " ".join(pg["issues"])
    assert drill_databases(env) == []
    assert "FAILED" in (env.backups / "drills" / f"{doc['id']}.md").read_text()


def test_a_row_that_differs_from_production_fails(env: Env) -> None:
    name = backup(env)
    owner = env.sql("SELECT owner FROM projects ORDER BY id LIMIT 1")
    pid = env.sql("SELECT id FROM projects ORDER BY id LIMIT 1")

    def change(sql: bytes) -> bytes:  # one field of one row, inside the COPY data
        line = re.search(rb"^" + pid.encode() + rb"\t.*$", sql, re.M)
        assert line is not None
        changed = line.group(0).replace(b"\t" + owner.encode() + b"\t", b"\ttampered\t", 1)
        return sql.replace(line.group(0), changed, 1)

    rewrite_dump(env, name, change)

    code, doc, err = drill(env)

    assert code == 12, err
    pg = component(doc)
    assert pg["status"] == "failed"
    issues = " ".join(pg["issues"])
    assert f"public.projects: {pid}: owner differ" in issues
    assert "tampered" not in json.dumps(doc)  # reports name keys and columns, not values
    assert drill_databases(env) == []


def slow_psql(tmp: Path) -> Path:
    """A bin folder whose psql waits a minute before loading: the drill is caught mid-restore."""
    from rfbackup.sandbox.postgres import PG_BIN

    bindir = tmp / "slow-bin"
    bindir.mkdir(parents=True)
    script = bindir / "psql"
    script.write_text(
        "#!/bin/sh\n"
        f'[ "$1" = --version ] && exec "{PG_BIN}/psql" --version\n'
        f'sleep 60\nexec "{PG_BIN}/psql" "$@"\n'
    )
    script.chmod(0o755)
    for tool in ("pg_dump", "pg_dumpall", "pg_restore"):
        (bindir / tool).symlink_to(PG_BIN / tool)
    return bindir


def test_signals_leave_no_scratch_database(env: Env, tmp_path: Path) -> None:
    backup(env)
    for signum in (signal.SIGTERM, signal.SIGINT):
        proc = env.popen("drill", RFBACKUP_PG_BIN=str(slow_psql(tmp_path / signum.name)))
        deadline = time.monotonic() + 60
        while not drill_databases(env):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signum)
        _, err = finish(proc, 60)
        assert proc.returncode == 128 + signum, err
        assert drill_databases(env) == []
        assert not (env.backups / "drills").exists()  # an interrupted drill reports nothing


def test_a_scratch_server_leaves_the_production_server_untouched(env: Env) -> None:
    from conftest import created_databases, ddl_mark

    from rfbackup.sandbox.postgres import ThrowawayPostgres

    backup(env)
    with ThrowawayPostgres() as scratch:
        scratch.psql("CREATE ROLE app LOGIN")  # the roles the backup's objects are owned by
        mark = ddl_mark(env.pg)
        url = f"postgresql://postgres:{scratch.password}@127.0.0.1:{scratch.port}/postgres"

        code, doc, err = drill(env, RFBACKUP_DRILL__DATABASE_URL=url)

        assert code == 0, err
        assert component(doc)["target"].endswith(f"127.0.0.1:{scratch.port}")
        assert created_databases(env.pg, mark) == []  # production's own log: no CREATE
        left = scratch.psql("SELECT count(*) FROM pg_database WHERE datname LIKE 'rfbackup_drill%'")
        assert left == "0"
        assert url not in err and scratch.password not in err + json.dumps(doc)


def test_keep_leaves_the_scratch_database_and_names_it(env: Env) -> None:
    backup(env)

    code, doc, err = drill(env, "--keep")

    assert code == 0, err
    kept = drill_databases(env)
    assert len(kept) == 1 and doc["kept"] == [f"database {kept[0]} on 127.0.0.1:{env.pg.port}"]
    assert "--keep: left database" in err
    env.sql(f'DROP DATABASE "{kept[0]}"', "postgres")
