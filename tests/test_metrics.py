"""Run metrics: every job's RunReport reaches a node_exporter textfile and a real Pushgateway;
a failed run records its failure and never erases the last success."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Env, base_env, make_database
from pitr_support import archiving_cluster, shared_dir
from prometheus_client.parser import text_string_to_metric_families

from rfbackup.ops import metrics
from rfbackup.ops.options import MetricsOptions
from rfbackup.report import RunReport, failed
from rfbackup.sandbox import prometheus as prom
from rfbackup.sandbox.postgres import ThrowawayPostgres, free_port

needs_prometheus = pytest.mark.skipif(
    shutil.which(prom.PUSHGATEWAY) is None, reason="prometheus-pushgateway not installed"
)


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """name + labels -> value, read with the reference parser (not our own code)."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float | None:
    for (n, lbls), v in samples(text).items():
        if n == name and set(labels.items()) <= lbls:
            return v
    return None


def total_failures(text: str) -> float:
    """The sum of backup_failures_total; its series exist (at 0) from the first run."""
    found = [v for (n, _), v in samples(text).items() if n == "backup_failures_total"]
    assert found, "backup_failures_total is exported from the first run"
    return sum(found)


@pytest.fixture
def small_env(pg: ThrowawayPostgres, tmp_path: Path) -> Env:
    dbname = make_database(pg, size=50_000)
    return Env(pg, tmp_path, dbname, {**base_env(tmp_path), **pg.env(dbname)})


@pytest.fixture(scope="module")
def gateway() -> Iterator[prom.Server]:
    if shutil.which(prom.PUSHGATEWAY) is None:
        pytest.skip("prometheus-pushgateway not installed")
    server = prom.pushgateway()
    yield server
    server.stop()


def report(outcome: str = "success", **kw: object) -> RunReport:
    r = RunReport("postgres", "production", "backup", "production/postgres/db", 100.0, 130.0)
    for k, v in kw.items():
        setattr(r, k, v)
    if outcome == "failure":
        failed(r, RuntimeError("boom"))
    return r


def test_run_report_from_success_failure_and_clean_exit() -> None:
    from rfbackup.errors import StorageError
    from rfbackup.report import reporting

    got: list[RunReport] = []
    with reporting("postgres", "staging", "backup", "staging/postgres/db", got.append) as run:
        run.stored("postgres/x.sql.gz", 100, 40, "ab" * 32)
    with (
        pytest.raises(StorageError),
        reporting("postgres", "staging", "backup", "staging/postgres/db", got.append),
    ):
        raise StorageError("disk full")
    with (
        pytest.raises(KeyboardInterrupt),
        reporting("wal", "staging", "backup", "staging/wal", got.append),
    ):
        raise KeyboardInterrupt
    ok, bad, interrupted = got
    assert ok.succeeded and ok.stored_bytes == 40 and ok.raw_bytes == 100
    assert ok.finished >= ok.started and ok.error_class is None
    doc = bad.to_dict()
    assert doc["outcome"] == "failure" and doc["error_class"] == "StorageError"
    assert doc["exit_code"] == 8 and doc["error_message"] == "disk full"
    assert doc["component"] == "postgres" and doc["lineage"] == "staging/postgres/db"
    assert doc["started"].endswith("+00:00") and doc["kind"] == "backup"
    assert (interrupted.error_class, interrupted.exit_code) == ("KeyboardInterrupt", 130)


def test_failure_carries_the_last_success_and_counts() -> None:
    ok = report(raw_bytes=1000, stored_bytes=200, key="k", sha256="x")
    state = metrics.apply({}, ok)
    group = metrics.group_of(ok)
    text = metrics.render(state, group).decode()
    assert value(text, "backup_last_success_timestamp", component="postgres") == 130.0
    assert value(text, "backup_last_success_timestamp_seconds") == 130.0
    assert value(text, "backup_last_size_bytes", kind="stored") == 200
    assert value(text, "backup_last_size_bytes", kind="raw") == 1000
    assert value(text, "backup_last_duration_seconds") == 30.0
    assert value(text, "backup_failures_total", error_class="SourceError") == 0.0
    assert value(text, "backup_failures_total", error_class="StorageError") == 0.0

    bad = report("failure")
    bad.started, bad.finished = 200.0, 205.0
    text2 = metrics.render(metrics.apply(metrics.parse(text, group), bad), group).decode()
    assert value(text2, "backup_last_success_timestamp") == 130.0  # kept
    assert value(text2, "backup_last_attempt_timestamp_seconds") == 200.0
    assert value(text2, "backup_last_failure_timestamp_seconds") == 205.0
    assert value(text2, "backup_failures_total", error_class="RuntimeError") == 1.0
    text3 = metrics.render(metrics.apply(metrics.parse(text2, group), bad), group).decode()
    assert value(text3, "backup_failures_total", error_class="RuntimeError") == 2.0
    # another group's samples in the same text are not taken for ours
    other = {**group, "component": "redis"}
    assert metrics.parse(text3, other) == {}


def test_cli_backup_textfile_success_then_failures(small_env: Env, tmp_path: Path) -> None:
    folder = tmp_path / "textfile"
    folder.mkdir()
    env = {"RFBACKUP_METRICS__TEXTFILE_DIR": str(folder)}
    done = small_env.run("backup", "postgres", **env)
    assert done.returncode == 0, done.stderr
    path = folder / "rfbackup_development_postgres_backup.prom"
    assert sorted(p.name for p in folder.iterdir()) == [path.name]  # no temporary left
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    text = path.read_text()
    success = value(text, "backup_last_success_timestamp", component="postgres")
    assert success is not None and success > 0
    data = next(
        p
        for p in small_env.backups.iterdir()
        if p.name.endswith(".sql.gz") and ".roles" not in p.name
    )
    assert value(text, "backup_last_size_bytes", kind="stored") == data.stat().st_size
    assert total_failures(text) == 0

    # a failing run (the database does not exist): exit 4, failure recorded, success kept
    for expected in (1.0, 2.0):
        bad = small_env.run("backup", "postgres", PGDATABASE="no_such_db", **env)
        assert bad.returncode == 4, bad.stderr
        text = path.read_text()
        assert value(text, "backup_last_success_timestamp") == success
        assert value(text, "backup_failures_total", error_class="SourceError") == expected
        failure_at = value(text, "backup_last_failure_timestamp_seconds")
        assert failure_at is not None and failure_at > success


def test_prune_reports(small_env: Env, tmp_path: Path) -> None:
    folder = tmp_path / "textfile"
    folder.mkdir()
    env = {"RFBACKUP_METRICS__TEXTFILE_DIR": str(folder)}
    assert small_env.run("prune", **env).returncode == 0
    text = (folder / "rfbackup_development_postgres_prune.prom").read_text()
    assert value(text, "backup_last_success_timestamp", operation="prune") is not None
    # every component with a retention policy reports its prune (redis too)
    assert (folder / "rfbackup_development_redis_prune.prom").is_file()
    # a dry run changes nothing, so it reports nothing
    for written in folder.iterdir():
        written.unlink()
    assert small_env.run("prune", "--dry-run", **env).returncode == 0
    assert list(folder.iterdir()) == []


def test_replica_check_exports_missing_objects(small_env: Env, tmp_path: Path) -> None:
    folder = tmp_path / "textfile"
    folder.mkdir()
    replica = tmp_path / "replica"
    replica.mkdir()
    env = {"RFBACKUP_METRICS__TEXTFILE_DIR": str(folder), "RFBACKUP_REPLICA__URL": str(replica)}
    assert small_env.run("backup", "postgres", **env).returncode == 0
    path = folder / "rfbackup_development_postgres_check.prom"
    assert small_env.run("replica", "check", **env).returncode == 0
    assert value(path.read_text(), "replica_missing_objects") == 0
    manifest = next(replica.glob("*.manifest.json"))
    manifest.unlink()  # the replica lost a backup
    assert small_env.run("replica", "check", **env).returncode == 6
    text = path.read_text()
    assert value(text, "replica_missing_objects") == 1
    # the check itself ran fine: it is a success with a gauge, not a failure
    assert total_failures(text) == 0


@needs_prometheus
def test_pushgateway_pushadd_keeps_last_success(gateway: prom.Server, tmp_path: Path) -> None:
    options = MetricsOptions(pushgateway_url=gateway.url)
    ok = report(raw_bytes=10, stored_bytes=5, environment="pushtest")
    metrics.deliver(ok, options)
    bad = report("failure", environment="pushtest")
    bad.started, bad.finished = 300.0, 301.0
    metrics.deliver(bad, options)
    metrics.deliver(bad, options)
    text = prom.get(gateway.url + "/metrics").decode()
    where = {"job": "rfbackup", "environment": "pushtest", "component": "postgres"}
    assert value(text, "backup_last_success_timestamp", **where) == 130.0
    assert value(text, "backup_failures_total", error_class="RuntimeError", **where) == 2.0
    assert value(text, "backup_last_attempt_timestamp_seconds", **where) == 300.0

    # read-back impossible (the textfile is a directory): the failure still lands, and the
    # gateway's last success survives because the failure pushes with pushadd (POST)
    (tmp_path / "rfbackup_pushtest_postgres_backup.prom").mkdir()
    options_broken = MetricsOptions(pushgateway_url=gateway.url, textfile_dir=tmp_path)
    bad.finished = 400.0
    metrics.deliver(bad, options_broken)
    text = prom.get(gateway.url + "/metrics").decode()
    assert value(text, "backup_last_success_timestamp", **where) == 130.0
    assert value(text, "backup_last_failure_timestamp_seconds", **where) == 400.0


def test_delivery_failure_does_not_fail_the_backup(small_env: Env) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    done = small_env.run(
        "backup",
        "postgres",
        RFBACKUP_METRICS__PUSHGATEWAY_URL=dead,
        RFBACKUP_METRICS__TIMEOUT_SECONDS="1",
    )
    assert done.returncode == 0, done.stderr
    assert "cannot push metrics" in done.stderr
    assert any(p.name.endswith(".manifest.json") for p in small_env.backups.iterdir())


def test_wal_push_batch_metrics_and_lean_import() -> None:
    folder = shared_dir("rfbackup-textfile-")
    with archiving_cluster(RFBACKUP_METRICS__TEXTFILE_DIR=str(folder)) as cluster:
        cluster.sql("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g")
        segment = cluster.switch_and_wait()
        # the pusher marks a segment done as soon as it is stored, then writes the round's
        # metrics: they follow within moments
        prom_file = folder / "rfbackup_development_wal_backup.prom"
        deadline = time.monotonic() + 30
        while not prom_file.exists():
            assert time.monotonic() < deadline, "wal-push wrote no metrics"
            time.sleep(0.05)
        text = prom_file.read_text()
        last = value(text, "wal_archive_last_segment_timestamp_seconds", component="wal")
        assert last is not None and last > 0
        assert value(text, "wal_archive_lag_segments") is not None
        assert total_failures(text) == 0

        # a copy of the archived segment, for the import check below (pg_wal recycles it)
        copy_dir = Path(shared_dir("rfbackup-walcopy-"))
        shutil.copy(Path(cluster.pg.data_dir) / "pg_wal" / segment, copy_dir / segment)

        # base backups and PITR retention report too (the cluster's env carries the folder)
        done = cluster.run("backup", "base")
        assert done.returncode == 0, done.stderr
        base_text = (folder / "rfbackup_development_postgres-base_backup.prom").read_text()
        stored = [p for p in Path(cluster.repo, "base").iterdir() if p.name.endswith(".zst")]
        assert len(stored) == 1
        assert value(base_text, "backup_last_size_bytes", kind="stored") == stored[0].stat().st_size
        bad = cluster.run("backup", "base", PGPORT=str(free_port()))
        assert bad.returncode == 4, bad.stderr
        base_text = (folder / "rfbackup_development_postgres-base_backup.prom").read_text()
        assert value(base_text, "backup_failures_total", error_class="SourceError") == 1
        assert value(base_text, "backup_last_size_bytes", kind="stored") == stored[0].stat().st_size
        assert cluster.run("pitr", "prune").returncode == 0
        prune_text = (folder / "rfbackup_development_postgres-base_prune.prom").read_text()
        assert value(prune_text, "backup_last_success_timestamp", operation="prune") is not None

        # without metrics configured, wal-push never imports prometheus_client
        probe = (
            "import sys; from pathlib import Path; from rfbackup.pitr.walcmd import push_command;"
            f"rc = push_command(Path({str(copy_dir / segment)!r}), {cluster.repo!r});"
            "print(rc, 'prometheus_client' in sys.modules)"
        )
        env = {k: v for k, v in cluster.env().items() if not k.startswith("RFBACKUP_METRICS")}
        out = subprocess.run(
            [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
        )
        assert out.stdout.split() == ["0", "False"], out.stderr
        shutil.rmtree(copy_dir, ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)
    assert os.path.exists(folder) is False


def test_wal_push_failure_is_recorded_and_exit_code_kept(tmp_path: Path) -> None:
    folder = tmp_path / "textfile"
    folder.mkdir()
    wal_dir = tmp_path / "pg_wal"
    (wal_dir / "archive_status").mkdir(parents=True)
    segment = wal_dir / "000000010000000000000001"
    segment.write_bytes(b"not a WAL segment" * 1000)  # PostgreSQL would never hand us this
    (wal_dir / "archive_status" / (segment.name + ".ready")).touch()
    env = {
        **base_env(tmp_path),
        "RFBACKUP_METRICS__TEXTFILE_DIR": str(folder),
        "RFBACKUP_REPOSITORY": str(tmp_path / "repo"),
    }
    done = subprocess.run(
        [str(Path(sys.executable).with_name("rfbackup")), "wal-push", str(segment)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode not in (0, 1), done.stderr  # an rfbackup error code, as before
    text = (folder / "rfbackup_development_wal_backup.prom").read_text()
    failures = [
        v for (n, _), v in samples(text).items() if n == "backup_failures_total" and v == 1.0
    ]
    assert len(failures) == 1
    assert value(text, "wal_archive_lag_segments") == 1
    assert value(text, "wal_archive_last_segment_timestamp_seconds") is None


# -- the Grafana dashboard -------------------------------------------------------------------

DASHBOARD_DIR = Path(__file__).resolve().parent.parent / "deploy" / "grafana"


def dashboard_queries() -> list[str]:
    import json

    doc = json.loads((DASHBOARD_DIR / "rfbackup.json").read_text())
    exprs = [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]
    exprs += [v["query"] for v in doc["templating"]["list"] if v["type"] == "query"]
    return exprs


def test_dashboard_is_built_by_its_script_and_queries_exported_metrics() -> None:
    import importlib.util
    import json
    import re

    spec = importlib.util.spec_from_file_location(
        "build_dashboard", DASHBOARD_DIR / "build_dashboard.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    committed = (DASHBOARD_DIR / "rfbackup.json").read_text()
    assert committed == module.render()  # regenerate: python deploy/grafana/build_dashboard.py
    doc = json.loads(committed)
    assert doc["uid"] == "rfbackup"
    titles = " ".join(p["title"] for p in doc["panels"]).lower()
    for topic in (
        "last successful backup",
        "duration",
        "size",
        "failed",
        "wal",
        "replica",
        "drill",
    ):
        assert topic in titles
    exprs = dashboard_queries()
    assert len(exprs) >= 9
    for expr in exprs:
        names = set(re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{", expr))
        names |= set(re.findall(r"label_values\(([a-zA-Z_:][a-zA-Z0-9_:]*)", expr))
        assert names, expr
        assert names <= set(metrics.EXPORTED), (expr, names - set(metrics.EXPORTED))
