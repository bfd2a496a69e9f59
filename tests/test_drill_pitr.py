"""``rfbackup drill --component pitr``: the newest base backup and the archived WAL recovered
into a scratch cluster, compared with the running production cluster; a missing WAL segment
fails the drill; nothing of the scratch cluster is left behind."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from pitr_support import Archiving, archiving_cluster


def scratch_left() -> list[str]:
    """Scratch folders and servers of drills: none may outlive a drill."""
    folders = [p for p in os.listdir("/tmp") if p.startswith("rfbackup-drill-")]
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    servers = [ln for ln in ps.splitlines() if "rfbackup-drill-" in ln and "postgres" in ln]
    return folders + servers


def workload(cluster: Archiving) -> None:
    cluster.sql("CREATE TABLE items (id int PRIMARY KEY, note text, n numeric)")
    cluster.sql("INSERT INTO items SELECT g, md5(g::text), g / 7.0 FROM generate_series(1, 500) g")
    cluster.switch_and_wait()
    cluster.sql("UPDATE items SET note = 'later' WHERE id <= 10")
    cluster.switch_and_wait()


def drill(cluster: Archiving) -> tuple[int, dict[str, Any], str]:
    r = cluster.run("drill", "--component", "pitr", "--json")
    return r.returncode, (json.loads(r.stdout) if r.stdout.strip() else {}), r.stderr


def test_pitr_drill_passes_and_measures(tmp_path: Path) -> None:
    before = scratch_left()
    with archiving_cluster() as cluster:
        assert cluster.run("backup", "base").returncode == 0
        workload(cluster)
        # production moves on after the last archived segment: not a defect
        cluster.sql("UPDATE items SET note = 'unarchived' WHERE id > 490")

        code, doc, err = drill(cluster)

        assert code == 0, err
        (pitr,) = doc["components"]
        assert pitr["status"] == "passed", pitr["issues"]
        assert pitr["rto_seconds"] > 0 and pitr["rpo_seconds"] is not None
        assert pitr["facts"]["restored_wal"] >= 2
        assert "gap_last_transaction_to_newest_wal_seconds" in pitr["facts"]
        items = pitr["facts"]["sampled_rows"]["public.items"]
        assert items["compared"] == 100 and items["missing"] == items["different"] == 0
        assert items["changed_in_production_since"] == 10
        repo = Path(cluster.repo)
        assert (repo / "drills" / f"{doc['id']}.json").exists()
    assert scratch_left() == before


def test_missing_wal_segment_fails_the_drill() -> None:
    before = scratch_left()
    with archiving_cluster() as cluster:
        assert cluster.run("backup", "base").returncode == 0
        workload(cluster)
        segments = sorted(
            Path(d, f)
            for d, _, files in os.walk(Path(cluster.repo) / "wal")
            for f in files
            if len(f.partition(".")[0].partition("-")[0]) == 24
            and not f.partition(".")[0].endswith(".backup")
        )
        segments[-2].unlink()  # a hole in the middle of the chain

        code, doc, err = drill(cluster)

        assert code == 12, err
        (pitr,) = doc["components"]
        assert pitr["status"] == "failed"
        assert "missing from the archive" in " ".join(pitr["issues"])
    assert scratch_left() == before


def test_sigterm_while_the_scratch_cluster_runs_leaves_nothing() -> None:
    import glob
    import signal
    import time

    from pitr_support import RFBACKUP_EXE

    before = scratch_left()
    with archiving_cluster() as cluster:
        assert cluster.run("backup", "base").returncode == 0
        workload(cluster)
        proc = subprocess.Popen(
            [str(RFBACKUP_EXE), "drill", "--component", "pitr"],
            cwd=cluster.work,
            env=cluster.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 120
            while not [
                p
                for p in glob.glob("/tmp/rfbackup-drill-*/data0/postmaster.pid")
                if p not in before
            ]:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline
                time.sleep(0.01)
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        assert proc.returncode == 128 + signal.SIGTERM, err
        assert "removed scratch cluster" in err
        assert not (Path(cluster.repo) / "drills").exists()
    assert scratch_left() == before
