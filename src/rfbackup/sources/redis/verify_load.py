"""``--verify-load``: load a snapshot into a throwaway redis-server and compare it.

DBSIZE per database must match the snapshot's own key counts (less keys that expired while
loading), and a random sample of keys is compared with the live source. The live data moves
on after the snapshot, so a sampled key may differ for good reasons: the check fails only
when more than ``SAMPLE_SLACK`` of the sample differs. Hash tables, sets and sorted sets
are compared by content, since their DUMP order changes on reload; strings, lists and
streams by DUMP.
"""

from __future__ import annotations

import secrets
from typing import IO, TYPE_CHECKING, Any

from pydantic import SecretStr

from rfbackup.errors import IntegrityError
from rfbackup.sources.redis.check import RdbSummary
from rfbackup.sources.redis.connection import client, keyspace, one_line_errors
from rfbackup.sources.redis.target import RedisTarget

if TYPE_CHECKING:
    from rfbackup.sandbox.redis import ThrowawayRedis

SAMPLE_SLACK = 0.1


def verify_load(plaintext: IO[bytes], source: RedisTarget, sample: int = 50) -> dict[str, Any]:
    """Check ``plaintext`` while copying it into a throwaway server, then compare."""
    from rfbackup.sandbox.redis import ThrowawayRedis
    from rfbackup.sources.redis.restore import write_checked

    scratch = ThrowawayRedis(password=secrets.token_hex(16))
    try:
        scratch.write_conf()
        summary = write_checked(plaintext, scratch.data_dir / scratch.dbfilename)
        return verify_loaded(scratch, summary, source, sample)
    finally:
        scratch.cleanup()


def verify_loaded(
    scratch: ThrowawayRedis, summary: RdbSummary, source: RedisTarget, sample: int = 50
) -> dict[str, Any]:
    """Start ``scratch`` on the checked snapshot already in its directory and compare it:
    DBSIZE per database with the snapshot's counts, a sample of keys with ``source``."""
    scratch.start()
    local = RedisTarget(port=scratch.port, password=SecretStr(scratch.password or ""))
    c = client(local)
    info = c.info("keyspace") | c.info("persistence")
    c.close()
    loaded = keyspace(info)
    expired = int(info.get("rdb_last_load_keys_expired", 0))
    if summary.total_keys - sum(loaded.values()) != expired:
        raise IntegrityError(
            f"verify-load: the server loaded {sum(loaded.values())} keys, the snapshot "
            f"holds {summary.total_keys} ({expired} expired on load)"
        )
    checked = differ = 0
    for db in sorted(loaded):
        a, b = client(local, db=db), client(source, db=db)
        with one_line_errors(source, "verify-load sampling"):
            for _ in range(min(sample, loaded[db])):
                key = a.randomkey()
                if key is None:
                    break
                checked += 1
                differ += _value(a, key) != _value(b, key)
        a.close()
        b.close()
    if checked and differ > SAMPLE_SLACK * checked:
        raise IntegrityError(
            f"verify-load: {differ} of {checked} sampled keys differ from the live server"
        )
    return {
        "dbsize": {str(db): n for db, n in sorted(loaded.items())},
        "expired_on_load": expired,
        "sampled": checked,
        "sampled_differ": differ,
    }


def _value(c: Any, key: bytes) -> Any:
    kind = c.type(key)
    if kind == b"hash":
        return kind, sorted(c.hgetall(key).items())
    if kind == b"set":
        return kind, sorted(c.smembers(key))
    if kind == b"zset":
        return kind, c.zrange(key, 0, -1, withscores=True)
    return kind, c.dump(key)
