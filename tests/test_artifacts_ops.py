"""Artifact snapshots in operations: metrics through the RunReport, the crontab line."""

from __future__ import annotations

from pathlib import Path

from artifacts_support import make_repo, write


def test_metrics_and_crontab(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    src = tmp_path / "vol"
    write(src / "a.txt", b"a\n")
    metrics = tmp_path / "textfile"
    metrics.mkdir()
    repo.ok("backup", "artifacts", side="writer", RFBACKUP_ARTIFACTS__PATHS=str(src),
            RFBACKUP_METRICS__TEXTFILE_DIR=str(metrics))  # fmt: skip
    prom = (metrics / "rfbackup_development_artifacts_backup.prom").read_text()
    assert 'backup_last_success_timestamp{component="artifacts"' in prom

    lines = repo.ok(
        "schedule", "crontab", "--dir", str(tmp_path), RFBACKUP_ARTIFACTS__PATHS=str(src)
    )
    assert "30 1 * * *" in lines and "rfbackup backup artifacts >> logs/backup.log" in lines
    assert "backup artifacts" not in repo.ok("schedule", "crontab")
