"""Redis snapshots: fetched over replication, checked, restored two ways, compared key by key
against the source (type, DUMP value, TTL within a second) on real redis-server processes."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from redis_support import assert_same, backup_to, contents, fill

from rfbackup.sandbox.redis import ThrowawayRedis
from rfbackup.sources.redis import RedisSource
from rfbackup.sources.redis.check import check_file
from rfbackup.sources.redis.remote import restore_remote
from rfbackup.sources.redis.restore import LocalServer, restore_files
from rfbackup.sources.redis.target import RedisTarget

PASSWORD = "s3cret-redis-pw"


def target_of(r: ThrowawayRedis) -> RedisTarget:
    return RedisTarget(port=r.port, password=SecretStr(r.password) if r.password else None)


@pytest.fixture(scope="module")
def source() -> Iterator[ThrowawayRedis]:
    with ThrowawayRedis(password=PASSWORD) as r:
        fill(r, big=8 * 1024 * 1024)
        yield r


@pytest.fixture(scope="module")
def snapshot(source: ThrowawayRedis, tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = RedisSource(target_of(source), chunk_size=256 * 1024)
    path = backup_to(src, tmp_path_factory.mktemp("redis") / "snap.rdb")
    section = src.manifest_section()
    assert section["method"] == "sync"
    assert section["redis_version"] == source.client().info("server")["redis_version"]
    assert section["rdb_version"] >= 9
    assert section["used_memory"] > 8 * 1024 * 1024
    assert section["aof_enabled"] is False
    assert section["keys"] == {str(db): 2 * 20 * 2 + 11 + (db == 0) for db in range(16)}
    assert all(v["rdb"] == v["info"] for v in section["key_counts"].values())
    assert isinstance(section["latest_fork_usec"], int)
    assert PASSWORD not in repr(section) and PASSWORD not in repr(src.target)
    return path


def test_snapshot_is_what_redis_check_rdb_accepts(snapshot: Path) -> None:
    # The independent oracle: Redis's own checker reads the file we stored.
    out = subprocess.run(["redis-check-rdb", str(snapshot)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout
    assert "RDB looks OK!" in out.stdout
    assert check_file(snapshot).keys == {db: 91 + (db == 0) for db in range(16)}


def test_restore_into_a_server_whose_files_we_control(
    source: ThrowawayRedis, snapshot: Path
) -> None:
    with ThrowawayRedis(password="other") as dest:
        dest.client().set("old", "data")
        dest.client().save()
        server = LocalServer(target_of(dest), start=lambda extra: dest.start(*extra))
        with open(snapshot, "rb") as fh:
            result = restore_files(fh, server)
        assert_same(contents(source), contents(dest))
        assert result["keys"] == {str(db): 91 + (db == 0) for db in range(16)}
        # The file it replaced was moved aside, not deleted.
        aside = [p for p in dest.data_dir.iterdir() if ".pre_restore_" in p.name]
        assert [p.name.split(".pre_restore_")[0] for p in aside] == ["dump.rdb"]
        with ThrowawayRedis() as probe:  # the old dump still loads, with the old data
            probe.stop()
            (probe.data_dir / "dump.rdb").write_bytes(aside[0].read_bytes())
            probe.start()
            assert probe.client().get("old") == b"data"


def test_restore_into_an_aof_server_comes_up_with_the_data_and_aof_on(
    source: ThrowawayRedis, snapshot: Path
) -> None:
    with ThrowawayRedis(password="other", appendonly=True) as dest:
        dest.client().set("before", "restore")
        server = LocalServer(target_of(dest), start=lambda extra: dest.start(*extra))
        with open(snapshot, "rb") as fh:
            restore_files(fh, server)
        c = dest.client()
        assert c.info("persistence")["aof_enabled"] == 1
        assert_same(contents(source), contents(dest))
        assert sorted(
            p.name.split(".pre_restore_")[0]
            for p in dest.data_dir.iterdir()
            if ".pre_restore_" in p.name
        ) == ["appendonlydir"]
        # Restart with the configuration file alone (appendonly yes): the AOF now holds it all.
        dest.stop()
        dest.start()
        assert dest.client().info("persistence")["aof_enabled"] == 1
        assert_same(contents(source), contents(dest))


def test_remote_restore_replays_every_key_with_ttls(source: ThrowawayRedis, snapshot: Path) -> None:
    with ThrowawayRedis(password="remote-pw") as dest:
        with open(snapshot, "rb") as fh:
            result = restore_remote(fh, target_of(dest))
        assert result["restored"] == {str(db): 91 + (db == 0) for db in range(16)}
        assert_same(contents(source), contents(dest))


def test_remote_partial_restore_merges_one_db_and_pattern(
    source: ThrowawayRedis, snapshot: Path
) -> None:
    with ThrowawayRedis() as dest:
        dest.client(db=3).set("current", "kept")
        dest.client(db=4).set("other-db", "kept")
        with open(snapshot, "rb") as fh:
            restore_remote(fh, target_of(dest), dbs=[3], match="ttl:*")
        got = contents(dest)
        want = {k: v for k, v in contents(source)[3].items() if k.startswith(b"ttl:")}
        assert len(want) == 20
        assert sorted(got) == [3, 4]
        restored = {k: v for k, v in got[3].items() if k != b"current"}
        assert_same({3: want}, {3: restored})  # TTLs within a second, not rounded alike
        assert dest.client(db=3).get("current") == b"kept"


def test_verify_load_matches_the_live_server_and_catches_a_changed_one(
    source: ThrowawayRedis, snapshot: Path
) -> None:
    from rfbackup.errors import IntegrityError
    from rfbackup.sources.redis.verify_load import verify_load

    with open(snapshot, "rb") as fh:
        result = verify_load(fh, target_of(source), sample=10)
    assert result["dbsize"] == {str(db): 91 + (db == 0) for db in range(16)}
    assert result["sampled"] == 160 and result["sampled_differ"] == 0
    with ThrowawayRedis() as other:  # same key names, other values: the sample must see it
        fill(other, per_db=20)
        with open(snapshot, "rb") as fh, pytest.raises(IntegrityError, match="sampled keys"):
            verify_load(fh, target_of(other), sample=10)
