"""The runbook's cron lines for a given checkout."""

from __future__ import annotations

import shlex
from pathlib import Path


def crontab_lines(checkout: Path) -> list[str]:
    where = shlex.quote(str(checkout.resolve()))
    return [
        "# Daily backup at 2 AM",
        f"0 2 * * * cd {where} && make db-backup >> logs/backup.log 2>&1",
        "",
        "# Weekly retention cleanup on Sundays at 3 AM",
        f"0 3 * * 0 cd {where} && make db-backup-retention >> logs/backup.log 2>&1",
    ]
