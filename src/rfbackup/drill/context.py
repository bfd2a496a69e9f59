"""What every check of one drill shares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rfbackup.config import Settings
    from rfbackup.drill.scratch import Scratch


@dataclass
class Context:
    settings: Settings
    repo: Any  # the Repository backups are read from
    drill_id: str  # YYYYMMDD_HHMMSS (UTC): scratch names carry it
    now: float  # unix time the drill started: RPO is measured from here
    scratch: Scratch
    sample_rows: int = 100  # rows per table compared with production

    def scratch_name(self, what: str) -> str:
        return f"rfbackup_drill_{self.drill_id}{'_' + what if what else ''}".lower()
