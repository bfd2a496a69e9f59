"""The streaming RDB walker gives the same answer whatever the chunk boundaries: its fast
path (whole entries parsed from the buffer) must agree with the byte-by-byte reference."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from redis_support import fill

from rfbackup.sandbox.redis import ThrowawayRedis
from rfbackup.sources.redis import rdb
from rfbackup.sources.redis.check import RdbCheck, RdbSummary, check_file


@pytest.fixture(scope="module")
def rdb_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with ThrowawayRedis() as r:
        fill(r, dbs=range(3), per_db=4)
        r.client().save()
        dest = tmp_path_factory.mktemp("rdb") / "dump.rdb"
        dest.write_bytes((r.data_dir / "dump.rdb").read_bytes())
    return dest


def check_in_chunks(data: bytes, size: int) -> RdbSummary | None:
    """Feed ``data`` ``size`` bytes at a time; None if the check has not finished in 30 s."""
    out: list[RdbSummary] = []

    def run() -> None:
        check = RdbCheck()
        for i in range(0, len(data), size):
            check.feed(data[i : i + size])
        out.append(check.finish())

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(30)
    return out[0] if out else None


@pytest.mark.parametrize("size", [1, 7, 64, 4096])
def test_any_chunking_gives_the_reference_counts(
    rdb_file: Path, size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rdb, "_FAST_TYPES", frozenset())  # the reference: slow path only
    reference = check_file(rdb_file)
    monkeypatch.undo()
    monkeypatch.setattr(rdb, "MARGIN", 64)  # small buffers: boundaries inside entries
    got = check_in_chunks(rdb_file.read_bytes(), size)
    assert got is not None, "the walker did not finish"
    assert got == reference
    assert reference.keys == {0: 4 * 4 + 11, 1: 4 * 4 + 11, 2: 4 * 4 + 11}
