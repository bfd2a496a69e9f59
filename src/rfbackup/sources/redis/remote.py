"""Restore a snapshot into any Redis, remote or managed, without file access: RESTORE.

The snapshot is copied to a private temporary directory while its CRC64, structure and
counts are checked, before anything touches the target; then every key is replayed from
that file (:mod:`replay`) through one pipelined connection: ``batch`` RESTOREs a round,
the next round packed while the target works through the previous one.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from struct import Struct
from typing import IO, Any, BinaryIO

from rfbackup.errors import RestoreError
from rfbackup.sources.redis.connection import client, one_line_errors
from rfbackup.sources.redis.replay import TAIL, Payloads, Skipped, entries, glob_regex
from rfbackup.sources.redis.resp import RespPipe
from rfbackup.sources.redis.restore import write_checked
from rfbackup.sources.redis.target import RedisTarget

BATCH_BYTES = 8 << 20  # a round is sent once it holds this much
BIG_VALUE = 1 << 20  # values above this are sent in place, not copied into a round
SOON_MS = 3_600_000  # TTLs that may run out during the replay: tracked for the final count

Progress = Callable[[int, int], None]


def restore_remote(
    plaintext: IO[bytes],
    target: RedisTarget,
    *,
    replace: bool = False,
    dbs: Iterable[int] | None = None,
    match: str | None = None,
    batch: int = 1000,
    progress: Progress | None = None,
    tmp_dir: Path | None = None,
) -> dict[str, Any]:
    """Replay the snapshot into ``target`` (all databases, or ``dbs``; every key, or
    those matching the Redis glob ``match``). Keys only the target holds are never deleted.
    The checked copy goes to a private directory in ``tmp_dir`` (default: the system's)."""
    wanted = set(dbs) if dbs is not None else None
    regex = glob_regex(match) if match else None
    with tempfile.TemporaryDirectory(prefix="rfbackup-redis-", dir=tmp_dir) as tmp:
        path = Path(tmp) / "snapshot.rdb"
        summary = write_checked(plaintext, path, durable=False)  # private, read back once
        source_dbs = sorted(
            db for db, n in summary.keys.items() if n and (wanted is None or db in wanted)
        )
        if not replace:
            _refuse_non_empty(path, target, source_dbs, wanted, regex, match)
        started = time.monotonic()
        with open(path, "rb") as fh:
            replayed = _Replay(target, summary.rdb_version, replace, batch, progress)
            replayed.run(fh, wanted, regex)
        seconds = time.monotonic() - started
    _verify(target, replayed, match)
    total = sum(replayed.done.values())
    return {
        "target": target.display,
        "restored": {str(db): n for db, n in sorted(replayed.done.items())},
        "expired_skipped": {str(db): n for db, n in sorted(replayed.skipped.expired.items())},
        "functions_skipped": replayed.skipped.functions,
        "replace": replace,
        "match": match,
        "seconds": round(seconds, 2),
        "keys_per_second": round(total / seconds) if seconds > 0 else None,
    }


class _Replay:
    def __init__(
        self,
        target: RedisTarget,
        rdb_version: int,
        replace: bool,
        batch: int,
        progress: Progress | None,
    ) -> None:
        self.target = target
        self.payloads = Payloads(rdb_version)
        self.rdb_version = rdb_version
        self.replace = b"$7\r\nREPLACE\r\n" if replace else b""
        self.batch = max(1, batch)
        self.progress = progress
        self.skipped = Skipped()
        self.done: dict[int, int] = {}
        self.soon: dict[int, list[int]] = {}  # per db: expiry times within SOON_MS of the start
        self._in_flight: list[list[int]] = []  # [db, RESTOREs] of the round sent last
        self._replies = 0  # replies that round owes (SELECTs included)

    def run(self, fh: BinaryIO, wanted: set[int] | None, regex: Any) -> None:
        with one_line_errors(self.target, "connecting for the replay"):
            self.pipe = RespPipe(self.target)
        try:
            self._run(fh, wanted, regex)
        finally:
            self.pipe.close()

    def _run(self, fh: BinaryIO, wanted: set[int] | None, regex: Any) -> None:
        parts: list[bytes | memoryview] = []
        size = keys = replies = 0
        counts: list[list[int]] = []  # [db, RESTOREs] in the round being packed
        db_on_wire = 0
        replace = self.replace
        filtered = wanted is not None or regex is not None
        soon_until = int(time.time() * 1000) + SOON_MS
        # Per key: a header (command, key, TTL, payload length, type byte), the value as the
        # file holds it, then the payload's tail (RDB version + CRC64, as Payloads.tail
        # builds it) packed together with the command's end.
        plain = b"*%d\r\n$7\r\nRESTORE\r\n$" % (5 if replace else 4)
        plain += b"%d\r\n%b\r\n$1\r\n0\r\n$%d\r\n%c"
        ttl_head = b"*%d\r\n$7\r\nRESTORE\r\n$" % (6 if replace else 5)
        ttl_head += b"%d\r\n%b\r\n$%d\r\n%b\r\n$%d\r\n%c"
        plain_tail, ttl_tail = b"\r\n" + replace, b"\r\n$6\r\nABSTTL\r\n" + replace
        plain_end = Struct(f"{TAIL.format}{len(plain_tail)}s").pack
        ttl_end = Struct(f"{TAIL.format}{len(ttl_tail)}s").pack
        payload_crc, version = self.payloads.crc, self.payloads.rdb_version
        for db, key, kind, value, expire_ms in entries(fh, self.skipped):
            if filtered and (
                (wanted is not None and db not in wanted)
                or (regex is not None and not regex.fullmatch(key))
            ):
                continue
            if db != db_on_wire or not counts:
                if db != db_on_wire:
                    num = b"%d" % db
                    parts.append(b"*2\r\n$6\r\nSELECT\r\n$%d\r\n%s\r\n" % (len(num), num))
                    replies += 1
                    db_on_wire = db
                counts.append([db, 0])
            crc = payload_crc(kind, value)
            if expire_ms < 0:
                parts += (
                    plain % (len(key), key, len(value) + 11, kind),
                    value,
                    plain_end(version, crc, plain_tail),
                )
            else:
                ttl = b"%d" % expire_ms
                parts += (
                    ttl_head % (len(key), key, len(ttl), ttl, len(value) + 11, kind),
                    value,
                    ttl_end(version, crc, ttl_tail),
                )
                if expire_ms < soon_until:
                    self.soon.setdefault(db, []).append(expire_ms)
            size += len(value)
            keys += 1
            replies += 1
            counts[-1][1] += 1
            if keys >= self.batch or size >= BATCH_BYTES or len(value) > BIG_VALUE:
                self._send(parts, replies, counts, len(value) > BIG_VALUE)
                parts, size, keys, replies, counts = [], 0, 0, 0, []
        if parts:
            self._send(parts, replies, counts, False)
        self._collect()

    def _send(
        self, parts: list[bytes | memoryview], replies: int, counts: list[list[int]], big: bool
    ) -> None:
        """Send a round, then read the previous round's replies: the target always has the
        next round to work on while we pack another."""
        with one_line_errors(self.target, "RESTORE"):
            if big:
                for p in parts:  # a big value goes out in place, not copied again
                    self.pipe.sock.sendall(p)
            else:
                self.pipe.sock.sendall(b"".join(parts))
        self._collect()
        self._in_flight, self._replies = counts, replies

    def _collect(self) -> None:
        if not self._replies:
            return
        with one_line_errors(self.target, "RESTORE"):
            errors = self.pipe.receive_ok(self._replies)
        if errors:
            why = str(errors[0])
            if "payload version" in why:
                why += f" (is the target's Redis older than RDB version {self.rdb_version}?)"
            raise RestoreError(
                f"restore into redis {self.target.display}: {len(errors)} of {self._replies} "
                f"commands failed ({why}); keys restored so far stay"
            )
        for db, n in self._in_flight:
            self.done[db] = self.done.get(db, 0) + n
        if self.progress is not None and self._in_flight:
            db = self._in_flight[-1][0]
            self.progress(db, self.done[db])
        self._in_flight, self._replies = [], 0


def _refuse_non_empty(
    path: Path,
    target: RedisTarget,
    dbs: list[int],
    wanted: set[int] | None,
    regex: Any,
    match: str | None,
) -> None:
    busy: list[str] = []
    if regex is None:
        for db in dbs:
            tgt = client(target, db=db)
            with one_line_errors(target, "checking the target"):
                n = tgt.dbsize()
            tgt.close()
            if n:
                busy.append(f"db {db} holds {n} keys")
    else:  # a partial restore merges: refuse only keys that exist on both sides
        keys: dict[int, list[bytes]] = {}
        with open(path, "rb") as fh:
            for db, key, *_ in entries(fh, Skipped()):
                if (wanted is None or db in wanted) and regex.fullmatch(key):
                    keys.setdefault(db, []).append(key)
        for db, names in sorted(keys.items()):
            tgt = client(target, db=db)
            with one_line_errors(target, "checking the target"):
                clash = sum(tgt.exists(*names[i : i + 1000]) for i in range(0, len(names), 1000))
            tgt.close()
            if clash:
                busy.append(f"db {db} already holds {clash} of the keys matching {match!r}")
    if busy:
        raise RestoreError(
            f"refusing to restore into redis {target.host}:{target.port}: "
            + "; ".join(busy)
            + " (use --replace to overwrite them)"
        )


def _verify(target: RedisTarget, replayed: _Replay, match: str | None) -> None:
    """Every replayed key is there, less those whose TTL ran out since."""
    now = int(time.time() * 1000)
    for db, n in sorted(replayed.done.items()):
        gone = sum(1 for ms in replayed.soon.get(db, ()) if ms <= now + 1000)
        tgt = client(target, db=db)
        with one_line_errors(target, "verifying the restore"):
            have = (
                tgt.dbsize()
                if match is None
                else sum(1 for _ in tgt.scan_iter(match=match, count=1000))
            )
        tgt.close()
        if have < n - gone:
            raise RestoreError(
                f"restore into redis {target.display}: db {db} holds {have} keys after "
                f"replaying {n}"
            )
