"""The remote restore replays straight from the RDB file: the payloads it builds must be what
DUMP gives, for keys Redis stores encoded (integers, LZF, long lengths), and its --match must
select exactly what Redis's own glob selects."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pydantic import SecretStr
from redis_support import assert_same, backup_to, contents

from rfbackup.errors import RestoreError
from rfbackup.sandbox.redis import ThrowawayRedis
from rfbackup.sources.redis import RedisSource
from rfbackup.sources.redis.remote import restore_remote
from rfbackup.sources.redis.replay import Payloads, Skipped, entries, glob_regex
from rfbackup.sources.redis.target import RedisTarget


def target_of(r: ThrowawayRedis) -> RedisTarget:
    return RedisTarget(port=r.port, password=SecretStr(r.password) if r.password else None)


ODD_KEYS = [
    b"12345",  # stored as an integer
    b"-7",
    b"user:" + b"a" * 200,  # long and compressible: stored LZF-compressed
    b"k" * 20_000,  # a length that needs four bytes
    b"\x00\xff\r\n*3\r\n",  # RESP-looking bytes
]


def test_payloads_are_what_dump_gives_and_encoded_keys_come_back(tmp_path: Path) -> None:
    with ThrowawayRedis() as r:
        c = r.client()
        for i, k in enumerate(ODD_KEYS):
            c.set(k, b"v" * (i * 50))
            c.hset(k + b":h", mapping={b"f": k})
        c.set("bigger", b"xy" * 700_000)  # over 1 MiB: sent in place
        snap = backup_to(RedisSource(target_of(r)), tmp_path / "snap.rdb")
        with open(snap, "rb") as fh:
            got = list(entries(fh, Skipped()))
        assert sorted(key for _, key, *_ in got) == sorted(c.keys("*"))
        payloads = Payloads(int(snap.read_bytes()[5:9]))
        for _, key, kind, value, _ in got:
            built = bytes([kind]) + bytes(value) + payloads.tail(kind, value)
            assert built == c.dump(key), key[:30]
        with ThrowawayRedis(password="t") as dest, open(snap, "rb") as fh:
            result = restore_remote(fh, target_of(dest))
            assert result["restored"] == {"0": 2 * len(ODD_KEYS) + 1}
            assert_same(contents(r, range(1)), contents(dest, range(1)))


def test_keys_that_expired_since_the_backup_are_skipped_and_counted(tmp_path: Path) -> None:
    with ThrowawayRedis() as r:
        c = r.client(db=2)
        c.set("short", "x", px=1500)
        c.set("long", "y", ex=3600)
        c.set("forever", "z")
        snap = backup_to(RedisSource(target_of(r)), tmp_path / "snap.rdb")
    time.sleep(1.6)
    with ThrowawayRedis() as dest, open(snap, "rb") as fh:
        result = restore_remote(fh, target_of(dest))
        assert result["restored"] == {"2": 2} and result["expired_skipped"] == {"2": 1}
        d = dest.client(db=2)
        assert sorted(d.keys("*")) == [b"forever", b"long"]
        assert 3590 <= d.ttl("long") <= 3600 and d.ttl("forever") == -1


PATTERNS = [
    "*", "a*", "*b", "a?c", "[ab]*", "[^a]*", "[a-c]x", "[c-a]x", r"a\*", r"\[x\]", "*[0-9]",
    "h[!]llo", "?", "", "[-]", r"[\]]*", "a[]b",
]  # fmt: skip
KEYS = [
    "a", "ab", "abc", "acc", "b", "bx", "cx", "dx", "a*", "[x]", "key1", "key", "h!llo",
    "hello", "-", "]z", "a]b", "", "é", "a\nb",
]  # fmt: skip


@pytest.mark.parametrize("pattern", PATTERNS)
def test_match_selects_what_redis_scan_match_selects(pattern: str) -> None:
    with ThrowawayRedis() as r:
        c = r.client()
        for k in KEYS:
            if k:
                c.set(k, "1")
        want = sorted(c.scan_iter(match=pattern, count=1000)) if pattern else []
    regex = glob_regex(pattern)
    assert sorted(k.encode() for k in KEYS if k and regex.fullmatch(k.encode())) == want


def test_an_unterminated_bracket_is_refused_in_one_line() -> None:
    with pytest.raises(RestoreError, match=r"'\[' without its '\]'"):
        glob_regex("abc[de")
