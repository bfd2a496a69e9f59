"""Check before it counts: CRC64, RDB version and key counts per database, as bytes stream by.

Redis ends an RDB file with the CRC-64/Jones (reflected, poly 0xad93d23594c935a9, init 0)
of everything before it, little-endian. ``anycrc`` (crcany's word-at-a-time tables) computes
it at several GB/s, so the CRC costs next to nothing; the key-count walk (:mod:`rdb`) runs in a
second thread fed through a bounded queue, so memory stays constant.

Counts tolerance: the RDB is forked a moment after ``INFO keyspace`` is read; keys written
or expired in between make the figures differ. A database passes when
``|rdb - info| <= max(COUNT_SLACK_KEYS, COUNT_SLACK_RATIO * info)``; both figures are recorded.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rfbackup import interrupts
from rfbackup.errors import IntegrityError
from rfbackup.sources.redis.rdb import Feed, RdbFormatError, Walked, _Closed, walk

CRC64_POLY = 0xAD93D23594C935A9  # CRC-64/Jones, reflected, init 0: "123456789" -> e9c6d914c4b8d9ca
COUNT_SLACK_KEYS = 10
COUNT_SLACK_RATIO = 0.01


def crc64() -> Any:
    """The CRC model; ``crc64().calc(data, previous)`` continues a running CRC."""
    import anycrc

    return anycrc.CRC(width=64, poly=CRC64_POLY, init=0, refin=True, refout=True, xorout=0)


@dataclass
class RdbSummary:
    """What a checked snapshot holds."""

    rdb_version: int
    size: int
    crc64: str  # hex, as stored in the file
    keys: dict[int, int]  # per database, counted key by key
    expires: dict[int, int]
    redis_version: str | None = None
    aux: dict[str, str] = field(default_factory=dict)

    @property
    def total_keys(self) -> int:
        return sum(self.keys.values())


class RdbCheck:
    """Feed it the RDB bytes in order, then :meth:`finish`; raises IntegrityError."""

    def __init__(self, what: str = "snapshot") -> None:
        self.what = what
        self._model = crc64()
        self._crc = 0
        self._tail = b""  # the last 8 bytes seen: the stored checksum, once at the end
        self._size = 0
        self._feed = Feed()
        self._result: Walked | None = None
        self._error: str | None = None
        self._thread = threading.Thread(target=self._run, name="rdb-walk", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        interrupts.leave_to_main_thread()
        try:
            self._result = walk(self._feed)
        except _Closed:
            self._error = "it ends before its EOF opcode (truncated)"
            return
        except RdbFormatError as exc:
            self._error = f"it is not a valid RDB: {exc}"
        except Exception as exc:
            self._error = f"it is not a valid RDB: {type(exc).__name__}: {exc}"
        self._feed.drain()

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        self._size += len(chunk)
        if len(chunk) >= 8:  # the CRC covers everything but the last 8 bytes seen so far
            crc = self._model.calc(self._tail, self._crc)
            self._crc = self._model.calc(memoryview(chunk)[:-8], crc)
            self._tail = chunk[-8:]
        else:
            data = self._tail + chunk
            self._crc = self._model.calc(data[:-8], self._crc)
            self._tail = data[-8:]
        self._feed.q.put(chunk)

    def abort(self) -> None:
        """The stream failed: stop the walker thread."""
        self._feed.q.put(None)
        self._thread.join()

    def finish(self) -> RdbSummary:
        self._feed.q.put(None)
        self._thread.join()
        bad = f"{self.what} failed its check: "
        if self._error is not None:
            raise IntegrityError(bad + self._error)
        w = self._result
        assert w is not None
        if w.version < 5:
            raise IntegrityError(bad + f"RDB version {w.version} carries no checksum")
        if self._size != w.eof_at + 8:
            raise IntegrityError(
                bad + f"{self._size - w.eof_at - 8} bytes after the end of the RDB data"
            )
        stored = int.from_bytes(self._tail, "little")
        if stored == 0:
            raise IntegrityError(bad + "the server wrote no checksum (rdbchecksum no)")
        if stored != self._crc:
            raise IntegrityError(
                bad + f"CRC64 mismatch (stored {stored:016x}, computed {self._crc:016x})"
            )
        for db, (size, _expires) in w.resizedb.items():
            if w.keys.get(db, 0) != size:
                raise IntegrityError(
                    bad + f"db {db} announces {size} keys but holds {w.keys.get(db, 0)}"
                )
        return RdbSummary(
            rdb_version=w.version,
            size=self._size,
            crc64=f"{stored:016x}",
            keys=dict(sorted(w.keys.items())),
            expires=dict(sorted(w.expires.items())),
            redis_version=w.aux.get("redis-ver"),
            aux=w.aux,
        )


def checked(chunks: Iterable[bytes], check: RdbCheck) -> Iterator[bytes]:
    """Pass ``chunks`` through ``check``; stops the checker when the source fails."""
    ok = False
    try:
        for chunk in chunks:
            check.feed(chunk)
            yield chunk
        ok = True
    finally:
        if not ok:
            check.abort()


def check_file(path: Path, chunk_size: int = 1 << 20) -> RdbSummary:
    check = RdbCheck(str(path))
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            check.feed(chunk)
    return check.finish()


def compare_counts(
    rdb: dict[int, int], info: dict[int, int]
) -> tuple[list[str], dict[str, dict[str, int]]]:
    """Problems (empty when within tolerance) and ``{db: {"rdb": n, "info": m}}``."""
    problems: list[str] = []
    figures: dict[str, dict[str, int]] = {}
    for db in sorted(set(rdb) | set(info)):
        r, i = rdb.get(db, 0), info.get(db, 0)
        figures[str(db)] = {"rdb": r, "info": i}
        if abs(r - i) > max(COUNT_SLACK_KEYS, COUNT_SLACK_RATIO * i):
            problems.append(f"db {db}: {r} keys in the snapshot, {i} in INFO keyspace")
    return problems, figures
