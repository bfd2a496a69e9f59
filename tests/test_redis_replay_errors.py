"""The remote restore reads a round's replies as one block of +OK while they are; any other
reply (here NOPERM from an ACL that covers only some keys) is parsed and fails the restore
in one line, with the keys before it restored."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr
from redis_support import backup_to

from rfbackup.errors import RestoreError
from rfbackup.sandbox.redis import ThrowawayRedis
from rfbackup.sources.redis import RedisSource
from rfbackup.sources.redis.remote import restore_remote
from rfbackup.sources.redis.target import RedisTarget


def test_an_error_among_the_ok_replies_fails_the_restore(tmp_path: Path) -> None:
    with ThrowawayRedis() as r:
        c = r.client()
        p = c.pipeline(transaction=False)
        for i in range(2500):
            p.set(f"a:{i}", f"value {i}")
        for i in range(5):
            p.set(f"b:{i}", "not allowed on the target")
        p.execute()
        snap = backup_to(RedisSource(RedisTarget(port=r.port)), tmp_path / "snap.rdb")
    with ThrowawayRedis(password="t") as dest:
        dest.client().acl_setuser(
            "restorer", enabled=True, passwords=["+pw"], keys=["a:*"], commands=["+@all"]
        )
        who = RedisTarget(port=dest.port, username="restorer", password=SecretStr("pw"))
        with open(snap, "rb") as fh, pytest.raises(RestoreError) as err:
            restore_remote(fh, who, batch=300)
        msg = str(err.value)
        assert "commands failed (NOPERM" in msg and "\n" not in msg, msg
        restored = dest.client().dbsize()
        assert 0 < restored < 2500  # what came before the failing round stays


def test_all_ok_rounds_restore_every_key(tmp_path: Path) -> None:
    with ThrowawayRedis() as r:
        c = r.client()
        for db in (0, 3):
            c.execute_command("SELECT", db)
            c.mset({f"k:{db}:{i}": str(i) for i in range(1234)})
        snap = backup_to(RedisSource(RedisTarget(port=r.port)), tmp_path / "snap.rdb")
    with ThrowawayRedis(password="t") as dest, open(snap, "rb") as fh:
        result = restore_remote(fh, RedisTarget(port=dest.port, password=SecretStr("t")), batch=100)
        assert result["restored"] == {"0": 1234, "3": 1234}
        for db in (0, 3):
            assert dest.client(db=db).dbsize() == 1234
            assert dest.client(db=db).get(f"k:{db}:77") == b"77"
