"""Object Lock for artifact snapshots: extend on use, the way kopia does.

A snapshot made today reuses packs written months ago. Each object got, when written, a lock
until its creation + the artifacts keep-days + margin; a pack still referenced by a newer
snapshot must not become deletable before that snapshot does. So every backup, before it
publishes its snapshot, lengthens the lock of every older object the snapshot needs (the packs
of the blobs it reuses, the indexes that locate them, the config and the stored keys) whose
lock ends before the new snapshot's, to the snapshot's retain-until plus a refresh period
(a tenth of the lock period): a pack used by every daily run is extended about once in ten
runs, not every run.

To avoid a HEAD per pack per run, the backup keeps a small ledger (``cache/locks/ID``, sealed
with the writer key like the stat cache) of the retain-until it set or knows for each object.
An object missing from the ledger (written before this existed, or repacked by prune) is
extended once, by asking the bucket. A few ledger entries are checked against the bucket on
every run; one that claims more than the bucket holds makes the run distrust the whole ledger
and ask the bucket for every object.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from rfbackup.errors import RfBackupError
from rfbackup.logs import log
from rfbackup.sources.artifacts.store import CACHE, CONFIG_KEY, KEYS, SNAPSHOTS, Store
from rfbackup.storage.base import read_bytes
from rfbackup.storage.objectlock import Retention, RetentionPolicy

LEDGER = f"{CACHE}locks/"
_CONTEXT = "lock-ledger/1"
SAMPLE = 4  # ledger entries checked against the bucket on every run


@dataclass
class Extended:
    """What a run did: objects it needed, lengthened, and ledger entries it found wrong."""

    needed: int = 0
    extended: list[str] = field(default_factory=list)
    until: datetime | None = None
    ledger_wrong: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "needed": self.needed,
            "extended": len(self.extended),
            "until": self.until.strftime("%Y-%m-%dT%H:%M:%SZ") if self.until else None,
            "ledger_wrong": self.ledger_wrong,
        }


def load_ledger(store: Store) -> tuple[dict[str, float], list[str]]:
    """The newest readable ledger (key -> retain-until, epoch seconds) and all ledger keys."""
    keys = sorted(o.key for o in store.repo.list(LEDGER))
    for key in reversed(keys):
        try:
            raw = store.key.open_sealed(_CONTEXT, read_bytes(store.repo, key), store.describe(key))
            doc = json.loads(raw)
            return {str(k): float(v) for k, v in doc.items()}, keys
        except (RfBackupError, ValueError, TypeError, AttributeError) as exc:
            log.warning("lock ledger %s unusable (%s): locks are read from the bucket", key, exc)
    return {}, keys


def save_ledger(store: Store, ledger: dict[str, float], old_keys: list[str]) -> None:
    name = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{time.time_ns() % 10**9:09d}"
    sealed = store.key.seal(_CONTEXT, json.dumps(ledger, sort_keys=True).encode())
    store.repo.put(f"{LEDGER}{name}", sealed)
    store.repo.delete(old_keys)  # the newest ledger replaces them


def _trustworthy(
    store: Store, ledger: dict[str, float], wanted: set[str], report: Extended
) -> bool:
    """Check a few entries of objects this run needs (so they exist: a pack prune deleted may
    still have its entry) against the bucket: the ledger may claim no more than it holds."""
    known = sorted(wanted & ledger.keys())
    for key in random.sample(known, min(SAMPLE, len(known))):
        held = store.repo.object_retention(key)
        if held is None or held.until.timestamp() + 1 < ledger[key]:
            report.ledger_wrong += 1
    if report.ledger_wrong:
        log.warning(
            "the artifacts lock ledger claims longer locks than the bucket holds: "
            "reading every lock from the bucket this run"
        )
    return report.ledger_wrong == 0


def extend_on_use(
    store: Store,
    old: Iterable[str],
    new: Iterable[str],
    policy: RetentionPolicy | None,
    started: datetime,
) -> Extended:
    """Lengthen the locks of the ``old`` objects a new snapshot needs to outlive it.

    ``new``: objects this run wrote since ``started`` (their lock is fresh, at least
    ``started`` + the lock period). Nothing happens without locks."""
    report = Extended()
    if policy is None:
        return report
    needed = policy.needed(SNAPSHOTS + "x")
    if needed is None:
        return report
    now = datetime.now(UTC)
    snapshot_until = now + needed
    target = Retention(policy.mode, snapshot_until + max(needed / 10, timedelta(seconds=1)))
    report.until = target.until
    ledger, old_keys = load_ledger(store)
    wanted = set(old) | {CONFIG_KEY} | {o.key for o in store.repo.list(KEYS)}
    trusted = _trustworthy(store, ledger, wanted, report)
    report.needed = len(wanted)
    for key in sorted(wanted):
        known = ledger.get(key) if trusted else None
        if known is not None and known >= snapshot_until.timestamp():
            continue
        store.repo.extend_retention(key, target)
        ledger[key] = target.until.timestamp()
        report.extended.append(key)
    for key in new:
        own = policy.for_key(key, started)
        if own is not None:
            ledger[key] = own.until.timestamp()
    # forget objects that lapsed long ago (deleted by prune or never needed again)
    ledger = {k: v for k, v in ledger.items() if v > now.timestamp()}
    save_ledger(store, ledger, old_keys)
    if report.extended:
        log.info(
            "extended the Object Lock of %d artifacts object(s) to %s",
            len(report.extended),
            report.until,
        )
    return report
