"""``rfbackup dr undelete`` end to end: a real archiving PostgreSQL cluster, PITR into a side
cluster before the deletion, the missing rows exported and merged in one transaction, rows
production still has left alone, the Kubernetes calls to the fake API."""

from __future__ import annotations

import json
import os
from pathlib import Path

from kube_fake import NS, FakeKube, deployment
from pitr_support import Archiving, archiving_cluster

CM = f"/api/v1/namespaces/{NS}/configmaps/researchflow-config"


def accident(cluster: Archiving) -> str:
    """Rows 1..200 exist at T; then 1..150 are deleted, 190 changed, 1001..1010 added."""
    cluster.sql("CREATE TABLE items (id int PRIMARY KEY, note text, at timestamptz)")
    cluster.sql("INSERT INTO items SELECT g, md5(g::text), now() FROM generate_series(1, 200) g")
    target = cluster.sql(
        "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
    )
    cluster.sql("DELETE FROM items WHERE id <= 150")
    cluster.sql("UPDATE items SET note = 'kept by production' WHERE id = 190")
    cluster.sql("INSERT INTO items SELECT g, 'after', now() FROM generate_series(1001, 1010) g")
    cluster.switch_and_wait()
    return target


def test_undelete_merges_the_deleted_rows_back(tmp_path: Path) -> None:
    kube = FakeKube().start()
    kube.add_configmap({})
    kube.add_deployment(deployment())
    try:
        with archiving_cluster() as cluster:
            assert cluster.run("backup", "base").returncode == 0
            target = accident(cluster)
            out = cluster.work / "recovered"

            r = cluster.run(
                "dr",
                "undelete",
                "--time",
                target,
                "--table",
                "public.items",
                "--out",
                str(out),
                "--merge",
                "--yes",
                "--json",
                RFBACKUP_MODE__KUBECONFIG=str(kube.kubeconfig(tmp_path)),
            )

            assert r.returncode == 0, r.stderr
            assert cluster.sql("SELECT count(*), min(id), max(id) FROM items") == "210|1|1010"
            assert cluster.sql("SELECT note FROM items WHERE id = 190") == "kept by production"
            assert (
                cluster.sql("SELECT count(*) FROM items WHERE id <= 150 AND note = md5(id::text)")
                == "150"
            )
            doc = json.loads(r.stdout)
            export = next(s for s in doc["steps"] if s["step"] == "export")
            assert export["exported"]["public.items"]["missing"] == 150
            assert export["exported"]["public.items"]["different"] == 1
            sql = (out / "public.items.sql").read_text()
            assert sql.count("INSERT INTO") == 150 and "ON CONFLICT DO NOTHING" in sql
            assert [
                q.content_type for q in kube.requests if q.path == CM and q.method == "PATCH"
            ] == [
                "application/merge-patch+json",
                "application/json-patch+json",
            ]
            assert not [p for p in os.listdir("/tmp") if p.startswith("rfbackup-undelete-")]
    finally:
        kube.stop()


def test_before_delete_finds_the_moment_and_exports_csv_without_merging(tmp_path: Path) -> None:
    kube = FakeKube().start()
    kube.add_configmap({})
    kube.add_deployment(deployment())
    try:
        with archiving_cluster() as cluster:
            assert cluster.run("backup", "base").returncode == 0
            accident(cluster)
            out = cluster.work / "recovered"

            r = cluster.run(
                "dr", "undelete", "--before-delete", "--table", "public.items",
                "--format", "csv", "--out", str(out), "--yes", "--json",
                RFBACKUP_MODE__KUBECONFIG=str(kube.kubeconfig(tmp_path)),
            )  # fmt: skip

            assert r.returncode == 0, r.stderr
            steps = {s["step"]: s for s in json.loads(r.stdout)["steps"]}
            assert steps["find"]["delete_xid"] > 0
            assert steps["merge"]["merged"] is None  # no --merge: production untouched
            assert cluster.sql("SELECT count(*) FROM items") == "60"
            rows = (out / "public.items.csv").read_text().splitlines()
            assert rows[0] == "id,note,at" and len(rows) == 151
    finally:
        kube.stop()
