"""Point-in-time recovery end to end, on real clusters that archive with rfbackup wal-push."""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import new_bucket
from pitr_support import Archiving, archiving_cluster, free_port, shared_dir

from rfbackup.sandbox.seaweedfs import ThrowawayS3


def archived_files(repo: Path) -> dict[str, str]:
    """WAL name -> sha256 of the stored file, from a walk of wal/ (not rfbackup's listing)."""
    found = {}
    for dirpath, _dirs, files in os.walk(repo / "wal"):
        for file in files:
            if file != "archive.json":
                found[file.partition("-")[0]] = hashlib.sha256(
                    Path(dirpath, file).read_bytes()
                ).hexdigest()
    return found


def postgres_ids() -> tuple[int, int]:
    pw = pwd.getpwnam("postgres")
    return pw.pw_uid, pw.pw_gid


def server_now(cluster: Archiving, port: int | None = None) -> str:
    """The server's clock, read after everything committed so far: a target time between two
    commits, with no wall-clock sleeps."""
    return cluster.sql(
        "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
        port,
    )


def accident(cluster: Archiving) -> str:
    """Rows 1..200 exist at T; then rows 1..150 are deleted and 1001..1010 added. Returns T."""
    cluster.sql("CREATE TABLE IF NOT EXISTS items (id int PRIMARY KEY, note text)")
    cluster.sql("INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 200) g")
    target = server_now(cluster)
    cluster.sql("DELETE FROM items WHERE id <= 150")
    cluster.sql("INSERT INTO items SELECT g, 'after' FROM generate_series(1001, 1010) g")
    cluster.switch_and_wait()
    return target


def recover(cluster: Archiving, *args: str, **extra: str) -> tuple[dict[str, object], int]:
    for _attempt in range(3):
        data_dir = cluster.new_data_dir()
        port = free_port()
        r = cluster.run(
            "pitr",
            "restore",
            *args,
            "--data-dir",
            str(data_dir),
            "--start",
            "--port",
            str(port),
            "--json",
            **extra,
        )
        log = data_dir / "rfbackup-pitr.log"
        if r.returncode == 0 or not log.exists() or "could not bind" not in log.read_text():
            break  # else the free port was taken meanwhile: again, on another one
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout), port


def test_recovers_deleted_rows_to_a_time() -> None:
    with archiving_cluster() as cluster:
        b = cluster.run("backup", "base", "--json")
        assert b.returncode == 0, b.stderr
        backup = json.loads(b.stdout)
        assert backup["start_lsn"] and backup["timeline"] == 1
        target = accident(cluster)
        assert cluster.sql("SELECT count(*) FROM items") == "60"

        outcome, port = recover(cluster, "--target-time", target)

        assert outcome["promoted"] is True and outcome["timeline"] == 2
        assert "recovery stopping before commit" in str(outcome["stopped_at"])
        assert cluster.sql("SELECT count(*), min(id), max(id) FROM items", port) == "200|1|200"
        assert cluster.sql("SELECT count(*) FROM items WHERE note = 'after'", port) == "0"
        # the original keeps running, untouched
        assert cluster.sql("SELECT count(*) FROM items") == "60"


def test_timeline_switch_then_recover_again() -> None:
    """Recover (timeline 2) with archiving on, write there, then recover from the same base
    backup across the switch, following the history file to timeline 3."""
    with archiving_cluster() as cluster:
        assert cluster.run("backup", "base").returncode == 0
        target = accident(cluster)
        outcome, port = recover(cluster, "--target-time", target, "--archive")
        assert outcome["timeline"] == 2
        cluster.sql("INSERT INTO items SELECT g, 'tl2' FROM generate_series(2001, 2005) g", port)
        second = server_now(cluster, port)
        cluster.sql("DELETE FROM items WHERE note = 'tl2' AND id > 2002", port)
        cluster.switch_and_wait(port)
        cluster.pg.stop()

        again, port3 = recover(cluster, "--target-time", second)

        assert again["timeline"] == 3
        assert cluster.sql("SELECT count(*) FROM items WHERE note = 'tl2'", port3) == "5"
        assert cluster.sql("SELECT count(*) FROM items", port3) == "205"
        verify = cluster.run("wal-verify", "--json")
        assert verify.returncode == 0, verify.stderr
        assert json.loads(verify.stdout)["timelines"][:2] == [1, 2]


def test_through_s3_with_encryption(s3: ThrowawayS3) -> None:
    bucket = new_bucket(s3)
    key_dir = shared_dir("rfbackup-age-")
    try:
        identity = key_dir / "identity.txt"
        subprocess.run(["age-keygen", "-o", str(identity)], check=True, capture_output=True)
        public = subprocess.run(
            ["age-keygen", "-y", str(identity)], check=True, capture_output=True, text=True
        ).stdout.strip()
        os.chown(identity, *postgres_ids())  # the recovered server's restore_command reads it
        repo = f"s3://{bucket}/researchflow"
        with archiving_cluster(repo, **s3.env(), RFBACKUP_ENCRYPTION__RECIPIENTS=public) as cluster:
            assert cluster.run("backup", "base").returncode == 0
            target = accident(cluster)
            keys = [o["Key"] for o in s3.client().list_objects_v2(Bucket=bucket)["Contents"]]
            assert any(
                k.startswith("researchflow/base/") and k.endswith(".tar.zst.age") for k in keys
            )
            assert any(k.startswith("researchflow/wal/") and k.endswith(".zst.age") for k in keys)
            never = cluster.new_data_dir()
            no_key = cluster.run(
                "pitr", "restore", "--target-time", target, "--data-dir", str(never)
            )
            assert no_key.returncode == 3 and "IDENTITY_FILE" in no_key.stderr
            assert not never.exists()

            outcome, port = recover(
                cluster,
                "--target-time",
                target,
                RFBACKUP_ENCRYPTION__IDENTITY_FILE=str(identity),
            )

            assert outcome["promoted"] is True
            assert cluster.sql("SELECT count(*), max(id) FROM items", port) == "200|200"
    finally:
        shutil.rmtree(key_dir, ignore_errors=True)


def test_retention_keeps_exactly_what_the_oldest_kept_backup_needs() -> None:
    with archiving_cluster() as cluster:
        cluster.sql("CREATE TABLE t (i int)")
        starts = []
        for i in range(3):
            b = cluster.run("backup", "base", "--json")
            assert b.returncode == 0, b.stderr
            starts.append(json.loads(b.stdout)["wal_start"])
            cluster.sql(f"INSERT INTO t VALUES ({i})")
            cluster.switch_and_wait()
        repo = Path(cluster.repo)
        before = archived_files(repo)

        preview = cluster.run(
            "pitr", "prune", "--keep-days", "0", "--keep-min", "2", "--json", "--dry-run"
        )
        assert preview.returncode == 0, preview.stderr
        assert archived_files(repo) == before  # dry run deletes nothing
        base_before = sorted(os.listdir(repo / "base"))
        r = cluster.run("pitr", "prune", "--keep-days", "0", "--keep-min", "2", "--json")
        assert r.returncode == 0, r.stderr

        after = archived_files(repo)
        expected = {n for n in before if n.endswith(".history") or n[:24] >= starts[1]}
        assert set(after) == expected and len(after) < len(before)
        assert {n: before[n] for n in after} == after  # the kept ones are untouched
        oldest = base_before[0].removesuffix(".manifest.json")
        assert sorted(os.listdir(repo / "base")) == [
            n for n in base_before if not n.startswith(oldest)
        ]
        listed = json.loads(cluster.run("pitr", "list", "--json").stdout)
        assert [row["wal_start"] for row in listed] == [starts[2], starts[1]]
        assert cluster.run("wal-verify").returncode == 0
        _, port = recover(cluster, "--latest", "--backup", listed[1]["name"])
        assert cluster.sql("SELECT count(*) FROM t", port) == "3"


def test_base_backup_that_cannot_start_leaves_nothing() -> None:
    with archiving_cluster() as cluster:
        tools = cluster.work / "bin"  # removed with the cluster, whatever happens
        tools.mkdir()
        (tools / "pg_basebackup").write_text("#!/bin/sh\n")  # not executable
        r = cluster.run("backup", "base", RFBACKUP_PG_BIN=str(tools))
        assert r.returncode == 3, r.stderr
        assert "cannot run" in r.stderr and "Traceback" not in r.stderr
        base = Path(cluster.repo) / "base"
        assert not base.exists() or list(base.iterdir()) == []


def test_restore_onto_a_full_disk_says_so_and_leaves_nothing() -> None:
    with archiving_cluster() as cluster:
        assert cluster.run("backup", "base").returncode == 0
        data_dir = cluster.new_data_dir()
        data_dir.mkdir()
        mount = ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(data_dir)]
        if subprocess.run(mount, capture_output=True).returncode != 0:
            pytest.skip("cannot mount a small tmpfs here")
        try:
            r = cluster.run("pitr", "restore", "--latest", "--data-dir", str(data_dir))
            assert r.returncode == 8, r.stderr
            assert "disk full" in r.stderr and "damaged" not in r.stderr
            assert list(data_dir.iterdir()) == []
        finally:
            subprocess.run(["umount", str(data_dir)], check=False)


def test_corrupted_base_backup_is_refused_and_leaves_nothing() -> None:
    with archiving_cluster() as cluster:
        assert cluster.run("backup", "base").returncode == 0
        (stored,) = (Path(cluster.repo) / "base").glob("*.tar.zst")
        blob = bytearray(stored.read_bytes())
        blob[len(blob) // 2] ^= 0xFF
        stored.write_bytes(bytes(blob))
        data_dir = cluster.new_data_dir()
        r = cluster.run("pitr", "restore", "--latest", "--data-dir", str(data_dir))
        assert r.returncode == 6, r.stderr
        info, error = r.stderr.strip().splitlines()  # the INFO line, then one error
        assert " INFO restoring base/" in info
        assert f" ERROR {stored}" in error  # an integrity error about the stored copy
        assert not data_dir.exists()
