"""The drill and a DR playbook against a real S3 server (SeaweedFS), with age-encrypted
backups: reports and audit events are objects under drills/ and dr-audit/ in the bucket,
and a byte changed in the bucket fails the drill."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from conftest import Env, new_bucket, table_checksums
from kube_fake import FakeKube, deployment

from rfbackup.sandbox.seaweedfs import ThrowawayS3


def s3_settings(env: Env, s3: ThrowawayS3, tmp: Path) -> dict[str, str]:
    key = tmp / "age-identity.txt"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    public = subprocess.run(
        ["age-keygen", "-y", str(key)], check=True, capture_output=True, text=True
    ).stdout.strip()
    return {
        **s3.env(),
        "RFBACKUP_REPOSITORY": f"s3://{new_bucket(s3)}/researchflow",
        "RFBACKUP_ENCRYPTION__RECIPIENTS": public,
        "RFBACKUP_ENCRYPTION__IDENTITY_FILE": str(key),
    }


def keys(s3: ThrowawayS3, extra: dict[str, str]) -> list[str]:
    bucket = extra["RFBACKUP_REPOSITORY"].removeprefix("s3://").split("/")[0]
    found = s3.client().list_objects_v2(Bucket=bucket).get("Contents", [])
    return sorted(str(o["Key"]) for o in found)


def test_drill_through_s3_and_a_changed_object(env: Env, s3: ThrowawayS3, tmp_path: Path) -> None:
    extra = s3_settings(env, s3, tmp_path)
    b = env.run("backup", "postgres", "--json", **extra)
    assert b.returncode == 0, b.stderr
    name = json.loads(b.stdout)["name"]

    r = env.run("drill", "--component", "postgres", "--json", **extra)

    assert r.returncode == 0, r.stderr
    doc: dict[str, Any] = json.loads(r.stdout)
    assert doc["components"][0]["backup"] == name
    assert f"researchflow/drills/{doc['id']}.json" in keys(s3, extra)
    # A byte flipped in the bucket: the next drill fails, and says so in its own report.
    bucket = extra["RFBACKUP_REPOSITORY"].removeprefix("s3://").split("/")[0]
    body = bytearray(
        s3.client().get_object(Bucket=bucket, Key=f"researchflow/{name}")["Body"].read()
    )
    body[len(body) // 2] ^= 0xFF
    s3.client().put_object(Bucket=bucket, Key=f"researchflow/{name}", Body=bytes(body))

    bad = env.run("drill", "--component", "postgres", "--json", **extra)

    assert bad.returncode == 12
    assert "corrupted" in json.dumps(json.loads(bad.stdout)["components"][0]["issues"])
    assert not [d for d in env.databases() if d.startswith("rfbackup_drill_")]


def test_corruption_playbook_audits_into_s3(env: Env, s3: ThrowawayS3, tmp_path: Path) -> None:
    extra = s3_settings(env, s3, tmp_path)
    kube = FakeKube().start()
    try:
        kube.add_configmap({})
        kube.add_deployment(deployment())
        good = table_checksums(env.pg.dsn(env.dbname))
        assert env.run("backup", "postgres", **extra).returncode == 0
        env.sql("TRUNCATE notes")

        r = env.run(
            "dr", "corruption", "--yes",
            RFBACKUP_MODE__KUBECONFIG=str(kube.kubeconfig(tmp_path)), **extra,
        )  # fmt: skip

        assert r.returncode == 0, r.stderr
        assert table_checksums(env.pg.dsn(env.dbname)) == good
        audit = [k for k in keys(s3, extra) if k.startswith("researchflow/dr-audit/corruption/")]
        assert len(audit) == 12 and audit[-1].endswith("-run-finished.json")
        listed = json.loads(env.run("list", "--json", **extra).stdout)
        assert all(e["component"] == "postgres" for e in listed)  # records are not backups
    finally:
        kube.stop()
