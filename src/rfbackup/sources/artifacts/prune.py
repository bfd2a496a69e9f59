"""``rfbackup artifacts prune``: forget old snapshots, then mark and sweep.

Under the repository lease (no backup runs meanwhile). Nothing is deleted on doubt: a snapshot,
index or tree that cannot be read stops the prune before any deletion (exit 6). Order, so that
an interrupted prune leaves a repository that checks clean:

1. repack the used blobs of packs that are mostly unused into new packs;
2. write one new index for every used blob;
3. delete the forgotten snapshots;
4. delete the old indexes;
5. delete the packs the new index does not name (and packs no index named, from interrupted
   backups, once older than the grace period).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rfbackup.errors import ConfigError
from rfbackup.logs import log
from rfbackup.sources.artifacts import index as index_mod
from rfbackup.sources.artifacts.index import Index, Location
from rfbackup.sources.artifacts.mark import mark
from rfbackup.sources.artifacts.packs import PackWriter, blob_from_pack, pack_key, read_pack
from rfbackup.sources.artifacts.store import PACKS, SNAPSHOTS, Store
from rfbackup.sources.artifacts.tree import Snapshot, read_snapshot, snapshot_keys


@dataclass(frozen=True)
class Policy:
    keep_days: int = 90
    keep_min: int = 3
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    repack_unused: float = 0.5  # repack a pack once more than this share of it is unused
    grace_seconds: int = 24 * 3600


def keep(snaps: list[Snapshot], policy: Policy, now: float) -> dict[str, str]:
    """The snapshots to keep and why. A partial snapshot never counts toward keep-min or the
    daily/weekly/monthly buckets; it is kept only while within keep-days."""
    reasons: dict[str, str] = {}
    cutoff = now - policy.keep_days * 86400
    newest_first = sorted(snaps, key=lambda s: -s.time)
    for s in newest_first:
        if s.time >= cutoff:
            reasons[s.id] = f"younger than {policy.keep_days} days"
    complete = [s for s in newest_first if not s.partial]
    for s in complete[: policy.keep_min]:
        reasons.setdefault(s.id, f"one of the newest {policy.keep_min} complete snapshots")
    buckets = (
        ("daily", policy.keep_daily, "%Y-%m-%d"),
        ("weekly", policy.keep_weekly, "%G-W%V"),
        ("monthly", policy.keep_monthly, "%Y-%m"),
    )
    for label, count, fmt in buckets:
        seen: list[str] = []
        for s in complete:
            period = datetime.fromtimestamp(s.time, UTC).strftime(fmt)
            if period in seen:
                continue
            if len(seen) >= count:
                break
            seen.append(period)
            reasons.setdefault(s.id, f"newest of {label} {period}")
    return reasons


@dataclass
class PruneResult:
    dry_run: bool
    kept: list[dict[str, Any]] = field(default_factory=list)
    forgotten: list[str] = field(default_factory=list)
    packs_deleted: int = 0
    packs_repacked: int = 0
    unindexed_packs_deleted: int = 0
    bytes_freed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def prune(store: Store, policy: Policy, dry_run: bool, level: int, pack_size: int) -> PruneResult:
    now = time.time()
    snaps = [read_snapshot(store, k) for k in snapshot_keys(store)]  # any failure: stop here
    idx = Index.load(store, strict=True)
    reasons = keep(snaps, policy, now)
    kept = [s for s in snaps if s.id in reasons]
    result = PruneResult(dry_run)
    result.kept = [{"id": s.id, "why": reasons[s.id]} for s in kept]
    result.forgotten = [s.id for s in snaps if s.id not in reasons]
    used = mark(store, idx.entries, kept, strict=True).used
    stored = {o.key.rsplit("/", 1)[-1]: o for o in store.repo.list(PACKS)}
    pack_used: dict[str, int] = {}
    pack_total: dict[str, int] = {}
    for cid, loc in idx.entries.items():
        pack_total[loc.pack] = pack_total.get(loc.pack, 0) + loc.length
        if cid in used:
            pack_used[loc.pack] = pack_used.get(loc.pack, 0) + loc.length
    drop = {p for p in pack_total if p not in pack_used}
    repack = {
        p
        for p, total in pack_total.items()
        if p in pack_used
        and p in stored
        and 1 - pack_used[p] / max(total, 1) > policy.repack_unused
    }
    orphans = {
        p
        for p, o in stored.items()
        if p not in pack_total and now - o.modified.timestamp() > policy.grace_seconds
    }
    result.packs_deleted = len(drop)
    result.packs_repacked = len(repack)
    result.unindexed_packs_deleted = len(orphans)
    result.bytes_freed = sum(stored[p].size for p in drop | orphans if p in stored) + sum(
        pack_total[p] - pack_used[p] for p in repack
    )
    if dry_run:
        return result
    new_entries: dict[bytes, Location] = {
        cid: loc for cid, loc in idx.entries.items() if cid in used and loc.pack not in repack
    }
    if repack:
        if not store.recipients:
            raise ConfigError(
                "repacking needs the age recipients too: set RFBACKUP_ENCRYPTION__RECIPIENTS"
            )
        writer = PackWriter(store, pack_size, lambda cid, loc: new_entries.__setitem__(cid, loc))
        for pack in sorted(repack):
            data = read_pack(store, pack)
            for cid, loc in idx.entries.items():
                if loc.pack == pack and cid in used:
                    body, _ = blob_from_pack(store, cid, loc, data)  # verified before copying
                    writer.add(cid, body, loc.raw, loc.kind)
        writer.finish()
    if new_entries and (drop or repack or orphans or result.forgotten or len(idx.objects) > 1):
        written = index_mod.write(store, new_entries)
        old_indexes = [k for k in idx.objects if not k.endswith(written)]
    else:
        old_indexes = []
    store.repo.delete(f"{SNAPSHOTS}{sid}" for sid in result.forgotten)
    if not new_entries:  # nothing is used any more: every index goes
        old_indexes = idx.objects
    store.repo.delete(old_indexes)
    gone = drop | repack | orphans if old_indexes or not new_entries else orphans
    store.repo.delete(pack_key(p) for p in sorted(gone))
    log.info(
        "artifacts prune: forgot %d snapshots, deleted %d packs, repacked %d",
        len(result.forgotten), len(drop), len(repack),
    )  # fmt: skip
    return result
