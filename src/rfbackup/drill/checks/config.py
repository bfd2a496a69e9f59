"""The configuration bundle: the newest one fetched (sha256, signature), `git bundle verify`,
its refs against the manifest, and cloned into a scratch folder. RTO: fetch + verify +
clone. RPO: the age of the newest bundle (taken on change: a quiet repository ages it
without losing anything; see the bundle's refs)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from rfbackup.drill.registry import register
from rfbackup.errors import Interrupted, RfBackupError

if TYPE_CHECKING:
    from rfbackup.drill.context import Context
    from rfbackup.drill.model import CheckResult


class ConfigCheck:
    component = "config"
    order = 50

    def skip_reason(self, ctx: Context) -> str | None:
        from rfbackup.sources.config.service import newest

        return None if newest(ctx.repo) else f"no configuration bundle in {ctx.repo.url}"

    def run(self, ctx: Context, result: CheckResult) -> None:
        from rfbackup.sources.config.service import fetch_bundle, newest

        entry = newest(ctx.repo)
        assert entry is not None and entry.manifest is not None
        result.backup, result.sha256 = entry.name, entry.sha256
        taken = datetime.fromisoformat(entry.manifest.started_at)
        result.backup_taken_at = result.restorable_point = taken.isoformat()
        result.rpo_seconds = round(max(ctx.now - taken.timestamp(), 0.0), 1)
        folder = Path(tempfile.mkdtemp(prefix="rfbackup-drill-config-", dir=ctx.settings.tmp_dir))
        result.target = f"scratch clone in {folder}"
        ctx.scratch.add(result.target, lambda: shutil.rmtree(folder, ignore_errors=True))
        t0 = time.monotonic()
        try:
            path, facts = fetch_bundle(ctx.settings, entry.name, folder, ctx.repo.url)
        except Interrupted:
            raise
        except RfBackupError as exc:
            result.check("bundle", False, str(exc))
            return
        clone = subprocess.run(
            ["git", "clone", "-q", "--mirror", str(path), str(folder / "clone.git")],
            capture_output=True,
            text=True,
        )
        result.rto_seconds = round(time.monotonic() - t0, 3)
        result.check("bundle", True, f"sha256 and git bundle verify ok; {facts['refs']} refs")
        result.check("clone", clone.returncode == 0, clone.stderr.strip()[:200] or "cloned")


register(ConfigCheck())
