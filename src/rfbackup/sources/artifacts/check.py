"""``rfbackup artifacts check``: structure always; with a subset, the data itself.

Structure: every snapshot decrypts and matches its name, every tree reads, every chunk a file
uses is in an index, every pack an index names exists. Data (``--read-data-subset``): the
chosen packs are read whole and every blob in them decrypted, decompressed and hashed; a bad
one is named with the files that use it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from rfbackup.errors import ConfigError, NotFound, RfBackupError
from rfbackup.progress import Reporter
from rfbackup.sources.artifacts.index import Index
from rfbackup.sources.artifacts.mark import mark
from rfbackup.sources.artifacts.packs import blob_from_pack, pack_key, read_pack
from rfbackup.sources.artifacts.store import PACKS, Store
from rfbackup.sources.artifacts.tree import read_snapshot, snapshot_keys


@dataclass
class CheckResult:
    snapshots: int = 0
    trees: int = 0
    chunks: int = 0
    packs: int = 0
    packs_read: int = 0
    unindexed_packs: int = 0  # left by an interrupted backup or prune: prune removes them
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "ok": self.ok}


def parse_subset(text: str | None) -> float:
    if text is None:
        return 0.0
    try:
        value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    except ValueError:
        value = -1
    if not 0 < value <= 1:
        raise ConfigError(f"--read-data-subset {text!r}: give a share such as 5% or 100%")
    return value


def check(store: Store, subset: float) -> CheckResult:
    r = CheckResult()
    idx = Index.load(store, strict=False)
    r.errors += [f"index {key}: {why}" for key, why in idx.bad]
    snaps = []
    for key in snapshot_keys(store):
        try:
            snaps.append(read_snapshot(store, key))
        except RfBackupError as exc:
            if isinstance(exc, ConfigError):
                raise
            r.errors.append(str(exc))
    r.snapshots = len(snaps)
    m = mark(store, idx.entries, snaps, strict=False)
    r.errors += m.problems
    r.trees, r.chunks = len(m.trees), len(m.chunks)
    stored = {o.key.rsplit("/", 1)[-1]: o.size for o in store.repo.list(PACKS)}
    indexed = idx.packs()
    r.packs = len(indexed)
    r.unindexed_packs = len(set(stored) - indexed)
    by_pack: dict[str, list[bytes]] = {}
    for cid, loc in idx.entries.items():
        by_pack.setdefault(loc.pack, []).append(cid)
    for pack in sorted(indexed - set(stored)):
        users = [p for c in by_pack[pack] for p in m.chunks.get(c, [])][:3]
        r.errors.append(
            f"pack {pack} is missing" + (f" (used by {', '.join(users)})" if users else "")
        )
    if subset > 0:
        chosen = [p for p in sorted(indexed & set(stored)) if _in_subset(p, subset)]
        with Reporter("checking data", sum(stored[p] for p in chosen)) as progress:
            for pack in chosen:
                _read_pack(store, idx, pack, by_pack[pack], m.chunks, r)
                progress.advance(stored[pack])
    return r


def _in_subset(pack: str, share: float) -> bool:
    if share >= 1:
        return True
    return int(hashlib.sha256(pack.encode()).hexdigest()[:8], 16) / 2**32 < share


def _read_pack(
    store: Store,
    idx: Index,
    pack: str,
    ids: list[bytes],
    users: dict[bytes, list[str]],
    r: CheckResult,
) -> None:
    try:
        data = read_pack(store, pack)
    except NotFound:
        r.errors.append(f"{store.describe(pack_key(pack))} is missing")
        return
    r.packs_read += 1
    for cid in ids:
        loc = idx.entries[cid]
        try:
            blob_from_pack(store, cid, loc, data)
        except RfBackupError as exc:
            if isinstance(exc, ConfigError):
                raise
            named = users.get(cid)
            r.errors.append(f"{exc}" + (f" (used by {', '.join(named)})" if named else ""))
