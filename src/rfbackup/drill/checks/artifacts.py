"""Artifact volumes: the newest snapshot restored into a scratch folder through the code of
``rfbackup restore artifacts`` (every chunk checked against its hash before it is written;
a damaged or missing one fails its file and the drill), then the restored file count is
compared with the snapshot's own.

RTO: open the store + restore. RPO: the age of the snapshot at drill time.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from rfbackup.drill.registry import register
from rfbackup.errors import Interrupted, RfBackupError

if TYPE_CHECKING:
    from rfbackup.drill.context import Context
    from rfbackup.drill.model import CheckResult

COMPONENT = "artifacts"


class ArtifactsCheck:
    component = COMPONENT
    order = 40

    def skip_reason(self, ctx: Context) -> str | None:
        from rfbackup.sources.artifacts.store import SNAPSHOTS

        # A damaged config or snapshot is a finding for run(), not a reason to skip.
        if not any(True for _ in ctx.repo.list(SNAPSHOTS)):
            return f"no artifact snapshot in {ctx.repo.url}"
        if not ctx.settings.encryption.identities():
            return (
                "artifact snapshots are encrypted: set RFBACKUP_ENCRYPTION__IDENTITY_FILE "
                "to drill them"
            )
        return None

    def run(self, ctx: Context, result: CheckResult) -> None:
        from rfbackup.sources.artifacts import reader, service
        from rfbackup.sources.artifacts.restore import restore

        folder = Path(
            tempfile.mkdtemp(prefix="rfbackup-drill-artifacts-", dir=ctx.settings.tmp_dir)
        )
        result.target = f"scratch folder {folder}"
        ctx.scratch.add(result.target, lambda: shutil.rmtree(folder, ignore_errors=True))
        sub = None  # the whole snapshot: a path of it is `restore artifacts --path`
        t0 = time.monotonic()
        try:
            st = service.reader(ctx.settings, ctx.repo)
            snap = reader.resolve(st, "latest")
            result.backup = f"artifacts/{snap.id}"
            taken = datetime.fromtimestamp(snap.time, UTC)
            result.backup_taken_at = result.restorable_point = taken.isoformat()
            result.rpo_seconds = round(max(ctx.now - snap.time, 0.0), 1)
            done = restore(st, snap, folder / "restored", sub, overwrite=False)
        except Interrupted:
            raise
        except RfBackupError as exc:
            result.check("restore", False, str(exc))
            return
        result.rto_seconds = round(time.monotonic() - t0, 3)
        result.facts.update(
            path=sub or "(whole snapshot)",
            files=done.files,
            bytes=done.bytes,
            dirs=done.dirs,
            symlinks=done.symlinks,
            hardlinks=done.hardlinks,
            partial_snapshot=snap.partial,
        )
        result.check(
            "content hashes",
            not done.failed,
            f"{len(done.failed)} file(s) not restored: " + "; ".join(done.failed[:3])
            if done.failed
            else f"{done.files} files, {done.bytes} bytes restored, every chunk verified",
        )
        if "files" in snap.stats:
            result.check(
                "file count",
                snap.stats["files"] in (done.files, done.files + done.hardlinks),
                f"restored {done.files} files (+{done.hardlinks} hardlinks); "
                f"snapshot says {snap.stats.get('files')}",
            )


register(ArtifactsCheck())
