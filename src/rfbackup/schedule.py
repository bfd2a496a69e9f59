"""Cron lines for a checkout: the runbook's two, plus every other scheduled job that exists.

The times come from the configuration (``[schedule]`` in rfbackup.toml, UTC on a UTC host);
the defaults are the runbook's. Every line appends to the runbook's ``logs/backup.log``.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from rfbackup.ops.options import ScheduleOptions

LOG = ">> logs/backup.log 2>&1"
RFBACKUP = ".venv/bin/rfbackup"


def crontab_lines(
    checkout: Path,
    schedule: ScheduleOptions | None = None,
    replica: bool = False,
    artifacts: bool = False,
) -> list[str]:
    s = schedule or ScheduleOptions()
    where = shlex.quote(str(checkout.resolve()))
    cd = f"cd {where} &&"
    lines = [
        "# Daily backup (the runbook: 2 AM)",
        f"{s.postgres} {cd} make db-backup {LOG}",
        "",
        "# Redis RDB snapshots (the runbook: hourly; retention keeps 7 days)",
        f"{s.redis} {cd} {RFBACKUP} backup redis {LOG}",
        "",
        "# Weekly retention cleanup (the runbook: Sundays at 3 AM)",
        f"{s.retention} {cd} make db-backup-retention {LOG}",
        "",
        "# Point-in-time recovery (after `rfbackup pitr setup`): weekly base backup,",
        "# daily check of the WAL archive, weekly expiry of old base backups and their WAL",
        f"{s.postgres_base} {cd} {RFBACKUP} backup base {LOG}",
        f"{s.wal_verify} {cd} {RFBACKUP} wal-verify {LOG}",
        f"{s.pitr_prune} {cd} {RFBACKUP} pitr prune {LOG}",
    ]
    if replica:
        lines += [
            "",
            "# Cross-region replica: daily check (exports replica_missing_objects)",
            f"30 3 * * * {cd} {RFBACKUP} replica check {LOG}",
        ]
    if artifacts:
        lines += [
            "",
            "# Artifact volumes (artifacts.paths): daily snapshot; weekly prune, only where the",
            "# age identity is (the backup host holds public keys only)",
            f"{s.artifacts} {cd} {RFBACKUP} backup artifacts {LOG}",
            f"# {s.artifacts_prune} {cd} {RFBACKUP} artifacts prune {LOG}",
        ]
    return lines
