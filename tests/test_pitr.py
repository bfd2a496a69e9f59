"""Point-in-time recovery end to end, on real clusters that archive with rfbackup wal-push."""

from __future__ import annotations

import json
import time

from pitr_support import Archiving, archiving_cluster, free_port, utc_now


def accident(cluster: Archiving) -> str:
    """Rows 1..200 exist at T; then rows 1..150 are deleted and 1001..1010 added. Returns T."""
    cluster.sql("CREATE TABLE IF NOT EXISTS items (id int PRIMARY KEY, note text)")
    cluster.sql("INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 200) g")
    time.sleep(1.1)
    target = utc_now()
    time.sleep(1.1)
    cluster.sql("DELETE FROM items WHERE id <= 150")
    cluster.sql("INSERT INTO items SELECT g, 'after' FROM generate_series(1001, 1010) g")
    cluster.switch_and_wait()
    return target


def recover(cluster: Archiving, *args: str, **extra: str) -> tuple[dict[str, object], int]:
    data_dir = cluster.new_data_dir()
    port = free_port()
    r = cluster.run(
        "pitr", *args, "--data-dir", str(data_dir), "--start", "--port", str(port), "--json",
        **extra,
    )
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
