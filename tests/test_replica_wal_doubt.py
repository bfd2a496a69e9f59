"""`replica sync` never deletes the replica's copy of a WAL file that differs from the
primary's: its size proves neither copy right (the key holds the segment's sha256)."""

from __future__ import annotations

from pathlib import Path

from rfbackup.replication import sync
from rfbackup.storage.local import LocalRepository

KEY = "wal/0000000100000000/000000010000000000000001-" + "ab" * 32 + ".zst"


def test_a_differing_wal_copy_on_the_replica_is_kept(tmp_path: Path) -> None:
    primary, replica = LocalRepository(tmp_path / "p"), LocalRepository(tmp_path / "r")
    primary.put(KEY, b"truncated")  # e.g. a bucket writer cut the primary's copy
    replica.put(KEY, b"the whole stored segment")
    found = sync(primary, replica, dry_run=False)
    assert [(d.name, d.problem) for d in found.differences] == [(KEY, "different")]
    assert "never deleted on doubt" in found.differences[0].detail
    with replica.open(KEY) as fh:
        assert fh.read() == b"the whole stored segment"
