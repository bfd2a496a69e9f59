"""Datasets and an independent key-by-key comparison for the Redis tests."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

from rfbackup.sandbox.redis import ThrowawayRedis
from rfbackup.sources.redis import RedisSource


def fill(r: ThrowawayRedis, dbs: range = range(16), per_db: int = 20, big: int = 0) -> None:
    """Every type in every database: strings (binary too), hashes, lists, sets, zsets,
    streams with consumer groups and pending entries, TTLs; plus one ``big``-byte value."""
    rng = random.Random(7)
    for db in dbs:
        c = r.client(db=db)
        p = c.pipeline(transaction=False)
        for i in range(per_db):
            p.set(f"s:{db}:{i}", f"value {i}")
            p.set(bytes([0, 255, db, i % 256]) + b"\r\nbin", os.urandom(64) + b"\x00\xff")
            p.set(f"ttl:{db}:{i}", "soon", ex=3600 + i)
            p.set(f"pttl:{db}:{i}", "x" * 300, px=7_200_000)
        p.set(f"int:{db}", 123456789)
        p.hset(f"h:{db}", mapping={f"f{i}": f"v{i}" for i in range(10)})
        p.hset(f"hbig:{db}", mapping={f"f{i}": "x" * 100 for i in range(300)})
        p.rpush(f"l:{db}", *range(50))
        p.rpush(f"lbig:{db}", *[os.urandom(100) for _ in range(400)])
        p.sadd(f"si:{db}", *range(20))
        p.sadd(f"s:{db}", *[f"m{i}" for i in range(200)])
        p.zadd(f"z:{db}", {"a": 1.5, "b": -2, "c": 3e10})
        p.zadd(f"zbig:{db}", {f"m{i}": rng.random() for i in range(300)})
        p.hset(f"h:ttl:{db}", mapping={"a": "1"})
        p.expire(f"h:ttl:{db}", 5000)
        p.execute()
        for i in range(30):
            c.xadd(f"st:{db}", {"n": str(i), "bin": os.urandom(8)})
        c.xgroup_create(f"st:{db}", "workers", id="0")
        c.xgroup_create(f"st:{db}", "idle", id="$")
        c.xreadgroup("workers", "alice", {f"st:{db}": ">"}, count=5)
        c.xreadgroup("workers", "bob", {f"st:{db}": ">"}, count=3)
        c.close()
    if big:
        c = r.client(db=0)
        c.set(b"big\x00value", os.urandom(big))
        c.close()


def contents(r: ThrowawayRedis | Any, dbs: range = range(16)) -> dict[int, dict[bytes, Any]]:
    """{db: {key: (type, DUMP, pttl rounded to the second)}} read with redis-py."""
    out: dict[int, dict[bytes, Any]] = {}
    for db in dbs:
        c = r.client(db=db) if isinstance(r, ThrowawayRedis) else r(db)
        keys = sorted(c.scan_iter(count=1000))
        p = c.pipeline(transaction=False)
        for k in keys:
            p.type(k)
            p.dump(k)
            p.pttl(k)
        got = p.execute()
        if keys:
            out[db] = {
                k: (got[3 * i], _value(c, k, got[3 * i], got[3 * i + 1]), _ttl(got[3 * i + 2]))
                for i, k in enumerate(keys)
            }
        c.close()
    return out


def _value(c: Any, key: bytes, kind: bytes, dump: bytes) -> Any:
    """DUMP where it is deterministic; hash tables, sets and skiplists iterate in an order
    that changes on reload, so for them the sorted contents (still read from the server)."""
    if kind == b"hash":
        return sorted(c.hgetall(key).items())
    if kind == b"set":
        return sorted(c.smembers(key))
    if kind == b"zset":
        return c.zrange(key, 0, -1, withscores=True)
    return dump  # string, list, stream (entries, groups, consumers, pending entries)


def _ttl(ms: int) -> int:
    return -1 if ms < 0 else round(ms / 1000)


def assert_same(a: dict[int, dict[bytes, Any]], b: dict[int, dict[bytes, Any]]) -> None:
    """Same databases, keys, types and DUMP values; TTLs within a second."""
    assert sorted(a) == sorted(b)
    for db in a:
        assert sorted(a[db]) == sorted(b[db]), f"db {db}: different keys"
        for k, (t1, v1, ttl1) in a[db].items():
            t2, v2, ttl2 = b[db][k]
            assert (t1, v1) == (t2, v2), f"db {db} key {k!r} differs"
            assert (ttl1 < 0) == (ttl2 < 0) and abs(ttl1 - ttl2) <= 1, f"db {db} {k!r} ttl"


def backup_to(source: RedisSource, dest: Path) -> Path:
    """Consume the source stream into ``dest``, published only when the stream completes
    (what the engine will do)."""
    part = dest.with_name(dest.name + ".partial")
    try:
        with open(part, "wb") as fh:
            for chunk in source.stream():
                fh.write(chunk)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    part.rename(dest)
    return dest
