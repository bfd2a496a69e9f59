"""`list` shows an entry whose manifest could not be read, and then exits non-zero: a script
reading the listing must not take an unknown state for a good one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from rfbackup.manifest import Manifest, StoredFile


def test_an_unreadable_manifest_is_listed_and_fails_the_run(tmp_path: Path) -> None:
    repo = tmp_path / "backups"
    repo.mkdir()
    good, doubt = "backup_20250120_143000.sql.gz", "backup_20250121_143000.sql.gz"
    for name in (good, doubt):
        (repo / name).write_bytes(b"12345")
    m = Manifest(
        name=good,
        component="postgres",
        environment="development",
        tool_version="0",
        started_at="2025-01-20T14:30:00+00:00",
        finished_at="2025-01-20T14:31:00+00:00",
        duration_seconds=60.0,
        compression="gzip",
        compression_level=6,
        data=StoredFile(good, "ab" * 32, 5, 50),
    )
    (repo / f"{good}.manifest.json").write_bytes(m.to_json())
    (repo / f"{doubt}.manifest.json").mkdir()  # EISDIR on read: unknown, not bad
    r = subprocess.run(
        [sys.executable, "-m", "rfbackup", "list", "--json", "--repo", str(repo)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert r.returncode == 8, r.stderr
    listed = {e["name"]: e["status"] for e in json.loads(r.stdout)}
    assert listed == {good: "ok", doubt: "unreadable"}
    assert "could not be read" in r.stderr and doubt in r.stderr
