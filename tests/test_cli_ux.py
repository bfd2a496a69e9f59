"""The 3 AM path on a real cluster: archiving that cannot write is caught and fixed, the PITR
refusal gives the right advice, `pitr find` names the deleting transaction and its stop point
really excludes it; plus the small CLI conventions (zones, deprecated forms, JSON times)."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from conftest import make_database
from pitr_support import RFBACKUP_EXE, archiving_cluster, base_env, free_port, shared_dir

from rfbackup.sandbox.demo import step
from rfbackup.sandbox.postgres import PG_BIN, ThrowawayPostgres

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d(:?\d\d)?)?$")
RFC3339_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def timestamps(doc: object) -> list[str]:
    if isinstance(doc, dict):
        return [t for v in doc.values() for t in timestamps(v)]
    if isinstance(doc, list):
        return [t for v in doc for t in timestamps(v)]
    return [doc] if isinstance(doc, str) and TIMESTAMP.match(doc) else []


def assert_rfc3339_z(doc: object) -> None:
    found = timestamps(doc)
    assert found, f"no timestamp in {doc}"
    bad = [t for t in found if not RFC3339_Z.match(t)]
    assert not bad, bad


def wait_for(predicate: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError("timed out")


def as_postgres(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["runuser", "-u", "postgres", "--", *cmd], capture_output=True, text=True, check=False
    )


def test_archiving_into_a_root_owned_repository_is_caught_fixed_and_confirmed() -> None:
    work = shared_dir("rfbackup-ux-")
    repo = work / "repo"
    repo.mkdir()
    os.chmod(repo, 0o755)  # root's, like the folder the logical backups use
    with archiving_cluster(repo=str(repo)) as cluster:
        data_dir = cluster.pg.data_dir
        cluster.sql("CREATE TABLE warmup (id int)")
        cluster.sql("SELECT pg_switch_wal()")
        wait_for(lambda: int(cluster.sql("SELECT failed_count FROM pg_stat_archiver")) > 0)
        ready = list((data_dir / "pg_wal" / "archive_status").glob("*.ready"))
        assert ready  # the backlog really is there

        live = cluster.run("wal-verify", "--live")
        assert live.returncode == 6, live.stderr
        assert "archiver is failing" in live.stderr
        backlog = re.search(r"(\d+) segment\(s\) waiting in pg_wal", live.stderr)
        assert backlog is not None and int(backlog.group(1)) >= 1, live.stderr

        auto_conf = data_dir / "postgresql.auto.conf"
        before = auto_conf.read_text()
        refused = cluster.run("pitr", "setup", "--data-dir", str(data_dir))
        assert refused.returncode == 3, refused.stderr
        assert f"postgres cannot create the WAL archive {repo}/wal" in refused.stderr
        assert f"fix:   mkdir -p {repo}/wal" in refused.stderr
        assert auto_conf.read_text() == before  # nothing written while a check fails
        assert as_postgres("test", "-w", str(repo)).returncode == 1

        fixed = cluster.run("pitr", "setup", "--data-dir", str(data_dir), "--fix-permissions")
        assert fixed.returncode == 0, fixed.stderr
        assert as_postgres("test", "-w", str(repo / "wal")).returncode == 0
        assert "archive_command" in auto_conf.read_text().replace(before, "")
        log = str(cluster.pg.root / "server.log")  # not our pipe: the server outlives pg_ctl
        restart = as_postgres(
            str(PG_BIN / "pg_ctl"), "-D", str(data_dir), "-l", log, "-w", "restart"
        )
        assert restart.returncode == 0, restart.stderr

        check = cluster.run("pitr", "setup", "--check", "--json")
        assert check.returncode == 0, check.stderr
        doc = json.loads(check.stdout)
        stored = [p.name for p in (repo / "wal").rglob("*") if p.is_file()]
        assert any(name.startswith(doc["segment"] + "-") for name in stored), stored
        assert doc["archived_count"] >= 1 and doc["failing"] is False
        assert doc["last_archived_time"].endswith("Z")


def test_refusal_advice_find_the_delete_and_recover_just_before_it() -> None:
    with archiving_cluster() as cluster:
        b = cluster.run("backup", "base", "--json")
        assert b.returncode == 0, b.stderr
        assert json.loads(b.stdout)["finished_at"].endswith("Z")
        listed = cluster.run("pitr", "list")
        assert listed.returncode == 0, listed.stderr
        header, row = listed.stdout.splitlines()
        assert header.split() == ["NAME", "STATUS", "FINISHED", "(UTC)", "TIMELINE", "WAL", "FROM",
                                  "WAL", "TO"]  # fmt: skip
        assert row.split()[:2] == [json.loads(b.stdout)["name"], "ok"]
        assert_rfc3339_z(json.loads(cluster.run("pitr", "list", "--json").stdout))

        # a target after the newest archived WAL: the advice is pg_switch_wal, never --latest
        later = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        nowhere = cluster.work / "never"
        r = cluster.run("pitr", "restore", "--target-time", later, "--data-dir", str(nowhere))
        assert r.returncode == 7, r.stderr
        assert "SELECT pg_switch_wal()" in r.stderr and "Do not use --latest" in r.stderr
        assert "or use --latest" not in r.stderr
        assert not nowhere.exists()

        cluster.sql("CREATE TABLE items (id int PRIMARY KEY, note text)")
        cluster.sql("INSERT INTO items SELECT g, 'kept' FROM generate_series(1, 5) g")
        with psycopg.connect(cluster.pg.dsn()) as conn:
            conn.execute("DELETE FROM items WHERE id <= 3")
            xid_row = conn.execute("SELECT txid_current()").fetchone()
            assert xid_row is not None
            xid = int(xid_row[0])
        cluster.sql("INSERT INTO items VALUES (100, 'after')")
        cluster.switch_and_wait()

        found = cluster.run("pitr", "find", "--table", "items", "--op", "delete", "--json")
        assert found.returncode == 0, found.stderr
        doc = json.loads(found.stdout)
        [tx] = [t for t in doc["transactions"] if t["xid"] == xid]
        assert tx["records"] == 3 and tx["aborted"] is False
        assert len(doc["transactions"]) == 1, doc  # the inserts are not deletes
        text = cluster.run("pitr", "find", "--table", "items")
        assert text.returncode == 0, text.stderr
        assert re.search(
            rf"^\s+{xid}\s+3\s+\S+Z\s+--target-time {tx['target_time']}$", text.stdout, re.M
        )

        port = free_port()
        data_dir = cluster.new_data_dir()
        restored = cluster.run(
            "pitr", "restore", "--target-time", tx["target_time"], "--data-dir", str(data_dir),
            "--start", "--port", str(port),
        )  # fmt: skip
        assert restored.returncode == 0, restored.stderr
        rows = cluster.sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM items", port)
        assert rows == "1,2,3,4,5"  # just before the DELETE: nothing deleted, nothing after

        stopped = cluster.run("pitr", "stop", str(data_dir))
        assert stopped.returncode == 0, stopped.stderr
        assert not (data_dir / "postmaster.pid").exists()
        assert (
            subprocess.run(
                [str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)], check=False
            ).returncode
            != 0
        )


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RFBACKUP_EXE), *args],
        capture_output=True,
        text=True,
        env=base_env(tmp_path),
        cwd=tmp_path,
        check=False,
    )


def test_target_time_without_a_zone_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "copy"
    r = run(tmp_path, "pitr", "restore", "--target-time", "2026-11-25 10:15:00",
            "--data-dir", str(target))  # fmt: skip
    assert r.returncode == 3
    assert r.stderr.count("\n") == 1, r.stderr
    assert "has no time zone" in r.stderr and "2026-11-25T10:15:00Z" in r.stderr
    assert not target.exists()


def test_old_pitr_form_still_works_with_a_deprecation_note(tmp_path: Path) -> None:
    old = run(tmp_path, "pitr", "--target-time", "2026-11-25 10:15:00", "--data-dir", "x")
    new = run(tmp_path, "pitr", "restore", "--target-time", "2026-11-25 10:15:00",
              "--data-dir", "x")  # fmt: skip
    assert old.returncode == new.returncode == 3
    note, rest = old.stderr.split("\n", 1)
    assert "deprecated" in note and "rfbackup pitr restore" in note
    assert rest.split(" ", 1)[1] == new.stderr.split(" ", 1)[1]  # the same error, after the time
    assert "deprecated" not in new.stderr


def test_json_times_headers_and_no_colour(pg: ThrowawayPostgres, tmp_path: Path) -> None:
    dbname = make_database(pg, size=20_000)
    env = {**base_env(tmp_path), **pg.env(dbname)}

    def rf(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(RFBACKUP_EXE), *args], capture_output=True, text=True,
                              env=env, cwd=tmp_path, check=False)  # fmt: skip

    backup = rf("backup", "postgres", "--json")
    assert backup.returncode == 0, backup.stderr
    listed = rf("list", "--json")
    assert_rfc3339_z(json.loads(listed.stdout))
    assert "\x1b[" not in rf("list").stdout + rf("list").stderr

    leftover = f"{dbname}_pre_restore_20260101_000000"
    pg.psql(f"CREATE DATABASE {leftover}")
    try:
        text = rf("prune-databases", "--dry-run", "--keep-days", "0")
        assert text.returncode == 0, text.stderr
        lines = text.stdout.splitlines()
        assert lines[0].split() == ["DATABASE", "KIND", "ACTION", "/", "REASON"], lines
        assert any(line.split()[:3] == [leftover, "previous", "would"] for line in lines[1:])
        doc = json.loads(rf("prune-databases", "--dry-run", "--keep-days", "0", "--json").stdout)
        # The session cluster is shared: other tests' leftovers may be listed too.
        mine = [d for d in doc["databases"] if d["database"].startswith(f"{dbname}_")]
        assert [(d["database"], d["action"]) for d in mine] == [(leftover, "drop")]
        assert_rfc3339_z(doc)
        assert leftover in pg.psql("SELECT string_agg(datname, ',') FROM pg_database")
    finally:
        pg.psql(f"DROP DATABASE IF EXISTS {leftover}")


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_ends_at_100_percent_in_mib(monkeypatch: pytest.MonkeyPatch) -> None:
    from rfbackup.progress import Reporter

    screen = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", screen)
    monkeypatch.delenv("NO_COLOR", raising=False)
    with Reporter("dumping", 10 * 2**20) as progress:  # the estimate was too high
        progress.advance(3 * 2**20)
    final = screen.getvalue().rsplit("\r", 1)[-1]
    assert "100%" in final, final
    assert "3.0/3.0 MiB" in final, final
    assert " MB" not in screen.getvalue()


def test_demo_headings_colour_only_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    step("into a file")
    assert capsys.readouterr().out == "\n== into a file\n"
    screen = FakeTerminal()
    monkeypatch.setattr(sys, "stdout", screen)
    step("on a terminal")
    assert "\x1b[1m" in screen.getvalue()
    monkeypatch.setenv("NO_COLOR", "1")
    plain = FakeTerminal()
    monkeypatch.setattr(sys, "stdout", plain)
    step("NO_COLOR")
    assert plain.getvalue() == "\n== NO_COLOR\n"


def test_make_install_links_the_entry_point(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    r = subprocess.run(["make", "-s", "-C", str(root), "install", f"BINDIR={tmp_path}"],
                       capture_output=True, text=True, check=False)  # fmt: skip
    assert r.returncode == 0, r.stderr
    link = tmp_path / "rfbackup"
    assert link.is_symlink() and link.resolve() == (root / ".venv/bin/rfbackup").resolve()
    version = subprocess.run([str(link), "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("rfbackup "), version
