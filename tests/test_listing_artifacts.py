"""`rfbackup list` sums up the artifact snapshots in one line / one JSON record, from the
listing alone (the backup job, without the age identity, can run it)."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import pytest
from artifacts_support import Repo, make_repo, write

from rfbackup.sandbox.seaweedfs import ThrowawayS3


def _listed(repo: Repo, *args: str) -> list[dict[str, object]]:
    out = repo.ok("list", "--json", *args, side="writer")  # no identity needed
    doc: list[dict[str, object]] = json.loads(out)
    return doc


def _snapshot_times(repo: Repo) -> list[datetime]:
    if repo.s3 is not None:
        pages = repo.s3.client().get_paginator("list_objects_v2")
        return [
            o["LastModified"]
            for page in pages.paginate(Bucket=repo.bucket, Prefix="rf/artifacts/snapshots/")
            for o in page.get("Contents", [])
        ]
    folder = Path(repo.url) / "artifacts" / "snapshots"
    return [datetime.fromtimestamp(p.stat().st_mtime).astimezone() for p in folder.iterdir()]


@pytest.mark.parametrize("where", ["local", "s3"])
def test_list_sums_up_artifact_snapshots(tmp_path: Path, s3: ThrowawayS3, where: str) -> None:
    repo = make_repo(tmp_path, s3 if where == "s3" else None)
    data = tmp_path / "data"
    write(data / "a.bin", os.urandom(50_000))
    repo.backup(data)
    write(data / "b.bin", os.urandom(20_000))
    repo.backup(data)

    (record,) = [r for r in _listed(repo) if r["component"] == "artifacts"]
    stored = sum(size for key, size in repo.objects().items() if key.startswith("artifacts/"))
    assert record["name"] == "artifacts/"
    assert record["snapshots"] == 2
    assert record["size_bytes"] == stored > 70_000
    assert record["status"] == "ok" and record["problem"] is None
    newest = max(_snapshot_times(repo))
    created = datetime.fromisoformat(str(record["created_at"]))
    assert abs((created - newest).total_seconds()) < 1
    # the same field names as the WAL record
    assert {"name", "component", "environment", "created_at", "size_bytes", "status"} <= set(record)

    # --component selects it alone, and another component leaves it out
    assert [r["component"] for r in _listed(repo, "--component", "artifacts")] == ["artifacts"]
    assert all(r["component"] != "artifacts" for r in _listed(repo, "--component", "redis"))

    text = repo.ok("list", side="writer")
    assert "Artifact snapshots: 2, newest " in text


def test_no_artifacts_no_record(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)  # initialized: config and key, no snapshot yet
    (record,) = _listed(repo, "--component", "artifacts")
    assert record["snapshots"] == 0 and record["created_at"] is None
    assert "Artifact snapshots: none" in repo.ok("list", side="writer")
    (Path(repo.url) / "artifacts" / "config").unlink()
    for key in (Path(repo.url) / "artifacts" / "keys").iterdir():
        key.unlink()
    assert _listed(repo, "--component", "artifacts") == []
