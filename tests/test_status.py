"""`rfbackup status` on real repositories: fresh exits 0, stale (judged later with --now)
exits 11; PITR components, the replica count and the incident point."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import Env, base_env, make_database
from pitr_support import archiving_cluster

from rfbackup.sandbox.postgres import ThrowawayPostgres


@pytest.fixture
def small_env(pg: ThrowawayPostgres, tmp_path: Path) -> Env:
    dbname = make_database(pg, size=50_000)
    return Env(pg, tmp_path, dbname, {**base_env(tmp_path), **pg.env(dbname)})


def status(env: Env, *args: str, **extra: str) -> tuple[int, dict[str, object], str]:
    done = env.run("status", "--json", *args, **extra)
    return done.returncode, json.loads(done.stdout), done.stderr


def component(doc: dict[str, object], name: str) -> dict[str, object]:
    comps = doc["components"]
    assert isinstance(comps, list)
    found: dict[str, object] = next(c for c in comps if c["component"] == name)
    return found


def test_fresh_then_stale(small_env: Env) -> None:
    code, doc, _ = status(small_env)
    assert code == 11  # no backup at all is stale, like the absent metric
    assert component(doc, "postgres")["state"] == "stale"

    before = datetime.now(UTC)
    assert small_env.run("backup", "postgres").returncode == 0
    code, doc, err = status(small_env)
    assert code == 0, err
    pg = component(doc, "postgres")
    assert pg["state"] == "ok"
    data = next(p for p in small_env.backups.glob("backup_*.sql.gz") if ".roles" not in p.name)
    stamp = datetime.strptime(data.name[7:22], "%Y%m%d_%H%M%S").replace(tzinfo=UTC)
    last = datetime.fromisoformat(str(pg["last_success"]))
    assert timedelta(0) <= last - stamp < timedelta(seconds=1)  # the name has whole seconds
    assert pg["recoverable_to"] == pg["last_success"]
    assert before - timedelta(seconds=1) <= stamp <= datetime.now(UTC)
    next_run = datetime.fromisoformat(str(pg["next_run"]))
    assert (next_run.hour, next_run.minute) == (2, 0) and next_run > datetime.now(UTC)
    assert pg["last_drill"] == "never" and pg["replica"] == "not configured"
    assert component(doc, "wal")["state"] == "not set up"
    assert doc["incident_point"] == pg["last_success"]
    assert "limited by postgres" in str(doc["incident_note"])

    # the same repository judged 3 days later: postgres (threshold 2 days) is stale
    later = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    code, doc, err = status(small_env, "--now", later)
    assert code == 11
    assert component(doc, "postgres")["state"] == "stale"
    assert err.strip().endswith("past the freshness threshold: postgres")
    assert len(err.strip().splitlines()) == 1
    # a looser threshold from the configuration makes it fresh again
    code, _, _ = status(small_env, "--now", later, RFBACKUP_FRESHNESS__POSTGRES_HOURS="100")
    assert code == 0

    table = small_env.run("status")
    assert table.returncode == 0
    assert "postgres" in table.stdout and "incident: newest consistent point" in table.stdout


def test_replica_missing_objects_counted_by_listing(small_env: Env, tmp_path: Path) -> None:
    replica = tmp_path / "replica"
    replica.mkdir()
    extra = {"RFBACKUP_REPLICA__URL": str(replica)}
    done = small_env.run("backup", "postgres", **extra)
    assert done.returncode == 0, done.stderr
    code, doc, _ = status(small_env, **extra)
    assert code == 0 and component(doc, "postgres")["replica"] == "in sync"
    copies = sorted(p for p in replica.iterdir() if p.is_file() and not p.name.endswith(".lock"))
    assert len(copies) == 4  # data, roles, database properties, manifest
    copies[0].unlink()
    _, doc, _ = status(small_env, **extra)
    assert component(doc, "postgres")["replica"] == "1 object(s) missing"


def test_pitr_components() -> None:
    with archiving_cluster() as cluster:
        cluster.sql("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g")
        done = cluster.run("backup", "base")
        assert done.returncode == 0, done.stderr
        cluster.switch_and_wait()
        done = cluster.run("status", "--json")
        doc = json.loads(done.stdout)
        base, wal = component(doc, "postgres-base"), component(doc, "wal")
        assert base["state"] == "ok" and wal["state"] == "ok"
        assert wal["next_run"] == "continuous (archive_command)"
        newest_wal = max(
            (p for p in Path(cluster.repo, "wal").rglob("*") if p.is_file()),
            key=os.path.getmtime,
        )
        assert wal["recoverable_to"] is not None
        wal_time = datetime.fromisoformat(str(wal["recoverable_to"]))
        assert abs(wal_time.timestamp() - newest_wal.stat().st_mtime) < 2
        # the logical postgres backups are missing here: the check fails on them alone
        assert done.returncode == 11 and component(doc, "postgres")["state"] == "stale"
        assert doc["incident_point"] == wal["recoverable_to"]

        # two hours later nothing new was archived: wal (1 hour) is stale, base is not
        later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
        doc = json.loads(cluster.run("status", "--json", "--now", later).stdout)
        assert component(doc, "wal")["state"] == "stale"
        assert component(doc, "postgres-base")["state"] == "ok"


def run_in_process(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str, **env: str
) -> tuple[int, str, str]:
    """rfbackup's own main() in this process: exit code, stdout, stderr."""
    from rfbackup.cli import main

    for key, val in env.items():
        monkeypatch.setenv(key, val)
    with pytest.raises(SystemExit) as stop:
        main(list(args))
    out = capsys.readouterr()
    return int(stop.value.code or 0), out.out, out.err


def test_crontab_covers_every_component(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("RFBACKUP_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("RFBACKUP_CONFIG", str(tmp_path / "none.toml"))
    code, out, err = run_in_process(
        capsys, monkeypatch, "schedule", "crontab", "--dir", str(tmp_path)
    )
    assert code == 0, err
    jobs = [line for line in out.splitlines() if line and not line.startswith("#")]
    cd = f"cd {tmp_path} && "
    assert jobs == [
        f"0 2 * * * {cd}make db-backup >> logs/backup.log 2>&1",
        f"0 * * * * {cd}.venv/bin/rfbackup backup redis >> logs/backup.log 2>&1",
        f"0 3 * * 0 {cd}make db-backup-retention >> logs/backup.log 2>&1",
        f"0 1 * * 0 {cd}.venv/bin/rfbackup backup base >> logs/backup.log 2>&1",
        f"0 5 * * * {cd}.venv/bin/rfbackup wal-verify >> logs/backup.log 2>&1",
        f"30 3 * * 0 {cd}.venv/bin/rfbackup pitr prune >> logs/backup.log 2>&1",
    ]
    code, out, _ = run_in_process(
        capsys,
        monkeypatch,
        "schedule",
        "crontab",
        "--dir",
        str(tmp_path),
        RFBACKUP_SCHEDULE__POSTGRES_BASE="0 23 * * 6",
        RFBACKUP_REPLICA__URL=str(tmp_path / "replica"),
    )
    assert f"0 23 * * 6 {cd}.venv/bin/rfbackup backup base" in out
    assert f"{cd}.venv/bin/rfbackup replica check >> logs/backup.log 2>&1" in out
    code, out, err = run_in_process(
        capsys, monkeypatch, "schedule", "crontab", RFBACKUP_SCHEDULE__POSTGRES="every day"
    )
    assert code == 3 and "schedule.postgres" in err and out == ""
    code, out, err = run_in_process(capsys, monkeypatch, "status", "--now", "yesterday")
    assert code == 3 and "--now" in err and out == ""
    assert len(err.strip().splitlines()) == 1


def test_errors_reach_the_current_stderr_after_an_earlier_run_set_up_logging(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Logging set up by an earlier main() (another stderr then) must not swallow the one-line
    error of a later run in the same process."""
    import io

    from rfbackup import logs

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RFBACKUP_CONFIG", str(tmp_path / "none.toml"))
    with monkeypatch.context() as m:
        m.setattr("sys.stderr", io.StringIO())
        logs.setup(None)
    code, out, err = run_in_process(
        capsys, monkeypatch, "schedule", "crontab", RFBACKUP_SCHEDULE__POSTGRES="every day"
    )
    assert code == 3 and "schedule.postgres" in err and out == ""
