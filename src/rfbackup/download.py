"""``rfbackup get``: a backup downloaded unchanged, with its sidecars, sha256 checked."""

from __future__ import annotations

from pathlib import Path

from rfbackup import signing
from rfbackup.catalog import UNREADABLE
from rfbackup.config import Settings
from rfbackup.engine.fetch import locate
from rfbackup.errors import IntegrityError, StorageError
from rfbackup.logs import log
from rfbackup.pipeline import HashingSink, read_chunks
from rfbackup.progress import Reporter
from rfbackup.storage.local import LocalRepository


def get(settings: Settings, name: str, dest: Path, allow_unverified: bool = False) -> Path:
    """Copy a backup's objects into folder ``dest`` (file names kept); returns the data file."""
    loc = locate(settings, name)
    entry = loc.entry
    if entry.status == UNREADABLE:  # a failed read, not a bad backup: try again later
        raise StorageError(f"{loc.repo.describe(loc.key)}: {entry.problem}")
    if not entry.good or entry.manifest is None:
        raise IntegrityError(f"{loc.repo.describe(loc.key)} is not a good backup ({entry.status})")
    signing.check(
        settings.signing,
        entry.manifest,
        loc.repo.describe(loc.key),
        allow_unverified,
        settings.env.value,
    )
    target = LocalRepository(dest)
    folder = loc.key.rpartition("/")[0]
    for key in entry.object_keys():
        local_name = key.rpartition("/")[2]
        writer = target.writer(local_name)
        try:
            sink = HashingSink(writer)
            with (
                loc.repo.open(f"{folder}/{local_name}" if folder else local_name) as fh,
                Reporter(f"downloading {local_name}", None) as p,
            ):
                for chunk in read_chunks(fh, 8 * 1024 * 1024):
                    sink.write(chunk)
                    p.advance(len(chunk))
            if key == entry.name and sink.sha256 != entry.manifest.sha256:
                raise IntegrityError(f"{loc.repo.describe(key)} is corrupted: sha256 mismatch")
            writer.commit()
        except BaseException:
            writer.abort()
            raise
    path = dest / entry.name.rpartition("/")[2]
    log.info("downloaded %s to %s (sha256 verified)", loc.repo.describe(entry.name), path)
    return path
