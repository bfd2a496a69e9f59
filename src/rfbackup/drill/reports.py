"""The drill's record: JSON for scripts and Markdown for people, stored in the repository
under ``drills/`` (never pruned: retention only deletes what a component's policy names)
and, with ``--report-dir``, copied into a local folder."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rfbackup.errors import StorageError

if TYPE_CHECKING:
    from rfbackup.drill.model import CheckResult, Drill
    from rfbackup.storage import Repository

PREFIX = "drills/"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


def markdown(drill: Drill) -> str:
    doc = drill.to_dict()
    lines = [
        f"# Restore drill {drill.id}: {doc['outcome'].upper()}",
        "",
        f"- Environment: {drill.environment}",
        f"- Repository: {drill.repository}",
        f"- Host: {drill.host}",
        f"- Started: {doc['started']}, finished: {doc['finished']} ({doc['duration_seconds']} s)",
        "",
        "| Component | Result | Backup used | RTO (restore) | RPO (data age) |",
        "|---|---|---|---|---|",
    ]
    for r in drill.results:
        backup = f"`{r.backup}`" if r.backup else "-"
        lines.append(
            f"| {r.component} | {r.status} | {backup} | {_seconds(r.rto_seconds)} "
            f"| {_seconds(r.rpo_seconds)} |"
        )
    for r in drill.results:
        lines += ["", *_component(r)]
    if drill.kept:
        lines += ["", "## Left for inspection (--keep)", ""]
        lines += [f"- {k}" for k in drill.kept]
    if drill.cleanup_problems:
        lines += ["", "## Clean-up problems", ""]
        lines += [f"- {p}" for p in drill.cleanup_problems]
    return "\n".join(lines) + "\n"


def _component(r: CheckResult) -> list[str]:
    lines = [f"## {r.component}: {r.status}", ""]
    if r.status == "skipped":
        return [*lines, f"Skipped: {'; '.join(r.issues) or 'not applicable'}"]
    if r.backup:
        lines.append(f"- Backup: `{r.backup}` (sha256 `{r.sha256 or '-'}`)")
    if r.backup_taken_at:
        lines.append(f"- Taken at: {r.backup_taken_at}")
    if r.restorable_point:
        lines.append(f"- Newest restorable point: {r.restorable_point}")
    if r.target:
        lines.append(f"- Restored into: {r.target}")
    lines += [f"- RTO: {_seconds(r.rto_seconds)}", f"- RPO: {_seconds(r.rpo_seconds)}"]
    gap = r.facts.get("gap_last_transaction_to_newest_wal_seconds")
    if gap is not None:
        lines.append(f"- Last replayed transaction to the newest archived WAL: {_seconds(gap)}")
    lines.append("")
    lines += ["| Check | Result | Detail |", "|---|---|---|"]
    for f in r.findings:
        verdict = "info" if f.informational else ("ok" if f.ok else "**FAILED**")
        lines.append(f"| {f.name} | {verdict} | {f.detail.replace('|', '/')} |")
    if r.issues:
        lines += ["", "Issues:", *[f"- {i}" for i in r.issues]]
    return lines


def store(repo: Repository, drill: Drill, report_dir: Path | None) -> list[str]:
    """Write ``drills/ID.json`` and ``drills/ID.md``; the keys (or paths) written."""
    doc = drill.to_dict()
    body = {
        ".json": (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode(),
        ".md": markdown(drill).encode(),
    }
    written = []
    for ext, data in body.items():
        key = f"{PREFIX}{drill.id}{ext}"
        repo.put(key, data)
        written.append(repo.describe(key))
    if report_dir is not None:
        try:
            report_dir.mkdir(parents=True, exist_ok=True)
            for ext, data in body.items():
                path = report_dir / f"drill_{drill.id}{ext}"
                _write_private(path, data)
                written.append(str(path))
        except OSError as exc:
            raise StorageError(f"cannot write the drill report in {report_dir}: {exc}") from None
    return written


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def load(repo: Repository, key: str) -> dict[str, Any]:
    from rfbackup.storage import read_bytes

    doc: dict[str, Any] = json.loads(read_bytes(repo, key))
    return doc


def latest_by_component(repo: Repository) -> dict[str, str]:
    """For `rfbackup status`: each component's result in the newest drill that checked it,
    as "passed 2026-11-26 (drills/ID.json)". Unreadable reports are skipped."""
    found: dict[str, str] = {}
    keys = sorted((o.key for o in repo.list(PREFIX) if o.key.endswith(".json")), reverse=True)
    for key in keys:
        try:
            doc = load(repo, key)
        except Exception:
            continue
        for c in doc.get("components", []):
            if c.get("status") in ("passed", "failed") and c.get("component") not in found:
                found[c["component"]] = f"{c['status']} {str(doc.get('started', ''))[:10]} ({key})"
    return found
