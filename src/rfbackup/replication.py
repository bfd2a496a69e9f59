"""Copies between repositories: the cross-region replica, and the staging fallback.

A backup is copied object by object, sidecars first and the manifest last, so a copy
interrupted half way is never taken for a backup on the other side. Copies go through the
replica's ``writer``, so a replica bucket with Object Lock locks them like the primary
(retain-until = copy time + keep-days + margin); a locked copy that differs is reported,
never deleted. ``check`` compares the
two sides by key, size and the manifests' sha256; ``sync`` repairs what differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rfbackup.catalog import Entry, scan
from rfbackup.errors import StorageError
from rfbackup.logs import log
from rfbackup.pipeline import read_chunks
from rfbackup.storage import ObjectInfo, Repository
from rfbackup.storage.objectlock import LockedObjects


def copy_object(src: Repository, dst: Repository, key: str) -> None:
    writer = dst.writer(key)
    try:
        with src.open(key) as fh:
            for chunk in read_chunks(fh, 8 * 1024 * 1024):
                writer.write(chunk)
        writer.commit()
    except BaseException:
        writer.abort()
        raise


def copy_backup(src: Repository, dst: Repository, entry: Entry) -> None:
    for key in entry.object_keys():
        if dst.stat(key) is None:
            copy_object(src, dst, key)


@dataclass
class Difference:
    name: str
    problem: str  # missing | different | extra
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "problem": self.problem, "detail": self.detail}


@dataclass
class Comparison:
    checked: int = 0
    differences: list[Difference] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(d.problem != "extra" for d in self.differences)


def compare(primary: Repository, replica: Repository, deep: bool = False) -> Comparison:
    """Every good backup of the primary (every component, base backups included) and every
    archived WAL file must be on the replica with the same bytes. ``deep`` also re-reads
    each backup's data on the replica and checks its sha256 against the primary's manifest."""
    mine = {e.name: e for e in scan(primary, include_base=True) if e.good}
    theirs = {e.name: e for e in scan(replica, include_base=True)}
    objects = {o.key: o for o in replica.list()}
    result = Comparison(checked=len(mine))
    for name, entry in sorted(mine.items()):
        other = theirs.get(name)
        missing = [k for k in entry.object_keys() if k not in objects]
        if missing:
            result.differences.append(Difference(name, "missing", ", ".join(missing)))
            continue
        assert other is not None and entry.manifest is not None
        if other.manifest is None or other.manifest.sha256 != entry.manifest.sha256:
            result.differences.append(Difference(name, "different", "sha256 differs"))
        elif _size(objects, name) != entry.manifest.data.stored_bytes or not other.good:
            result.differences.append(
                Difference(name, "different", other.problem or "size differs")
            )
        elif deep and _stored_sha256(replica, name) != entry.manifest.sha256:
            result.differences.append(
                Difference(name, "different", "the replica's data does not match its sha256")
            )
    wal = _wal_objects(primary)
    result.checked += len(wal)
    for key, obj in sorted(wal.items()):
        copy = objects.get(key)
        if copy is None:
            result.differences.append(Difference(key, "missing", "WAL"))
        elif copy.size != obj.size:
            result.differences.append(Difference(key, "different", "WAL: size differs"))
    for name in sorted(set(theirs) - set(mine)):
        result.differences.append(Difference(name, "extra", "only on the replica"))
    return result


def _wal_objects(repo: Repository) -> dict[str, ObjectInfo]:
    """The WAL archive's objects: segments, history files and the archive's identity."""
    return {o.key: o for o in repo.list("wal/")}


def _stored_sha256(repo: Repository, key: str) -> str:
    from rfbackup.pipeline import sha256_of

    with repo.open(key) as fh:
        return sha256_of(fh, lambda n: None)[0]


def _size(objects: dict[str, ObjectInfo], key: str) -> int:
    return objects[key].size


def sync(primary: Repository, replica: Repository, dry_run: bool, deep: bool = False) -> Comparison:
    """Copy what the replica lacks; replace what differs. Returns what was found."""
    found = compare(primary, replica, deep)
    entries = {e.name: e for e in scan(primary, include_base=True) if e.good}
    for diff in found.differences:
        if diff.problem == "extra":
            continue
        if dry_run:
            log.info("would copy %s to %s (%s)", diff.name, replica.url, diff.problem)
            continue
        if diff.name.startswith("wal/"):  # a WAL object is its own whole
            if diff.problem == "different":
                # Neither copy is proven right by its size (the key holds the sha256 of the
                # segment, not of the stored bytes): never delete the replica's on doubt.
                log.warning(
                    "%s differs between %s and %s: kept both; compare them with "
                    "`rfbackup wal-fetch` from each",
                    diff.name,
                    primary.url,
                    replica.url,
                )
                diff.detail += "; not replaced (never deleted on doubt)"
                continue
            copy_object(primary, replica, diff.name)
            continue
        entry = entries[diff.name]
        if diff.problem == "different":
            try:  # manifest first: never half a backup
                replica.delete(reversed(entry.object_keys()))
            except LockedObjects as exc:  # Object Lock: the replica's copy stays; reported
                log.warning("cannot replace %s on %s: %s", diff.name, replica.url, exc)
                diff.detail += "; locked on the replica, not replaced"
                continue
        copy_backup(primary, replica, entry)
        log.info("copied %s to %s (%s)", diff.name, replica.url, diff.problem)
    return found


def replicate(primary: Repository, replica: Repository, name: str) -> None:
    """After a backup: put the same objects on the replica."""
    entry = next((e for e in scan(primary, prefix=name) if e.name == name), None)
    if entry is None or not entry.good:
        raise StorageError(f"cannot replicate {name}: not a good backup on {primary.url}")
    copy_backup(primary, replica, entry)
    log.info("replicated %s to %s", name, replica.url)


def upload_pending(
    fallback: Repository, primary: Repository, replica: Repository | None = None
) -> list[str]:
    """Move backups written to the fallback folder (primary was down) to the primary, and
    to the replica if there is one, before they leave the fallback folder."""
    moved = []
    for entry in scan(fallback):
        if not entry.good:
            continue
        copy_backup(fallback, primary, entry)
        if replica is not None:
            copy_backup(fallback, replica, entry)
        fallback.delete(reversed(entry.object_keys()))
        moved.append(entry.name)
        log.info("uploaded %s from the fallback folder to %s", entry.name, primary.url)
    return moved
