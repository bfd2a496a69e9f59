"""Redis snapshots under faults: a killed server, a wrong password, SYNC refused, a corrupted
snapshot, refused and interrupted restores, secrets kept out of argv."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Generator
from pathlib import Path

import pytest
from pydantic import SecretStr
from redis_support import assert_same, backup_to, contents, fill

from rfbackup.errors import IntegrityError, RestoreError, SourceError
from rfbackup.sandbox.redis import ThrowawayRedis
from rfbackup.sources.redis import RedisSource
from rfbackup.sources.redis.check import check_file
from rfbackup.sources.redis.remote import restore_remote
from rfbackup.sources.redis.restore import LocalServer, restore_files
from rfbackup.sources.redis.target import RedisTarget

PASSWORD = "fault-test-pw"
NO_SYNC = {"SYNC": "", "PSYNC": ""}


def target_of(r: ThrowawayRedis, password: str | None = None) -> RedisTarget:
    pw = password if password is not None else r.password
    return RedisTarget(port=r.port, password=SecretStr(pw) if pw else None)


def test_server_killed_mid_fetch_fails_and_yields_no_snapshot(tmp_path: Path) -> None:
    with ThrowawayRedis(password=PASSWORD) as r:
        c = r.client()
        for i in range(24):  # 24 MB of incompressible values: more than socket buffers hold
            c.set(f"k{i}", os.urandom(1 << 20))
        src = RedisSource(target_of(r), chunk_size=64 * 1024)
        stream = src.stream()
        next(stream)
        r.kill()
        with pytest.raises(SourceError) as err:
            for _ in stream:
                pass
    assert "connection lost" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(RuntimeError):
        src.manifest_section()
    # What the engine will do: publish only a completed stream. Nothing was published.
    with ThrowawayRedis(password=PASSWORD) as r2:
        c = r2.client()
        for i in range(24):
            c.set(f"k{i}", os.urandom(1 << 20))

        class KilledAfterFirstChunk(RedisSource):
            def stream(self) -> Generator[bytes]:
                for i, chunk in enumerate(super().stream()):
                    if i == 1:
                        r2.kill()
                    yield chunk

        with pytest.raises(SourceError, match="connection lost"):
            backup_to(KilledAfterFirstChunk(target_of(r2), chunk_size=64 * 1024), tmp_path / "s")
    assert os.listdir(tmp_path) == []


def test_wrong_password_is_one_line_without_the_password() -> None:
    with ThrowawayRedis(password=PASSWORD) as r, pytest.raises(SourceError) as err:
        for _ in RedisSource(target_of(r, "not-the-password")).stream():
            pass
    msg = str(err.value)
    assert "authentication failed" in msg and f"127.0.0.1:{r.port}" in msg
    assert "\n" not in msg and "not-the-password" not in msg


def test_sync_refused_falls_back_to_bgsave_and_the_file(tmp_path: Path) -> None:
    with ThrowawayRedis(password=PASSWORD, renamed=NO_SYNC) as r:
        fill(r, dbs=range(3), per_db=5)
        src = RedisSource(target_of(r))
        snap = backup_to(src, tmp_path / "snap.rdb")
        section = src.manifest_section()
        assert section["method"] == "bgsave-file"
        assert [x.split(" ")[0] for x in section["refused"]] == ["SYNC", "PSYNC"]
        assert r.client().info("persistence")["rdb_saves"] == 1
        with ThrowawayRedis() as dest, open(snap, "rb") as fh:
            restore_remote(fh, target_of(dest))
            assert_same(contents(r, range(3)), contents(dest, range(3)))


def test_every_method_refused_names_each_one() -> None:
    with ThrowawayRedis(renamed={**NO_SYNC, "BGSAVE": ""}) as r, pytest.raises(SourceError) as err:
        for _ in RedisSource(target_of(r)).stream():
            pass
    msg = str(err.value)
    assert "\n" not in msg
    assert "SYNC refused (ERR unknown command" in msg
    assert "PSYNC refused (ERR unknown command" in msg
    assert "BGSAVE fallback: BGSAVE failed: unknown command" in msg


def _flip_inside_value(path: Path, marker: bytes) -> None:
    data = bytearray(path.read_bytes())
    at = data.index(marker) + len(marker) // 2
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def test_corrupted_snapshot_fails_its_crc_and_no_target_is_touched(tmp_path: Path) -> None:
    marker = os.urandom(4096)
    with ThrowawayRedis() as r:
        r.client().set("payload", marker)
        snap = backup_to(RedisSource(target_of(r)), tmp_path / "snap.rdb")
    check_file(snap)  # intact: passes
    _flip_inside_value(snap, marker)
    with pytest.raises(IntegrityError, match="CRC64 mismatch"):
        check_file(snap)
    with ThrowawayRedis() as dest:
        dest.client().set("keep", "me")
        dest.client().save()
        before = (dest.data_dir / "dump.rdb").read_bytes()
        server = LocalServer(target_of(dest), start=lambda extra: dest.start(*extra))
        with open(snap, "rb") as fh, pytest.raises(IntegrityError):
            restore_files(fh, server)
        with open(snap, "rb") as fh, pytest.raises(IntegrityError):
            restore_remote(fh, target_of(dest), replace=True)
        assert sorted(os.listdir(dest.data_dir)) == ["dump.rdb"]
        assert (dest.data_dir / "dump.rdb").read_bytes() == before
        assert dest.client().keys("*") == [b"keep"]
        assert dest.proc is not None and dest.proc.poll() is None


def test_failed_file_restore_puts_the_old_files_back(tmp_path: Path) -> None:
    with ThrowawayRedis() as r:
        r.client().set("new", "data")
        snap = backup_to(RedisSource(target_of(r)), tmp_path / "snap.rdb")
    with ThrowawayRedis(appendonly=True) as dest:
        dest.client().set("old", "data")
        calls: list[list[str]] = []

        def start(extra: list[str]) -> None:
            calls.append(extra)
            if len(calls) == 1:
                raise RuntimeError("could not start")
            dest.start(*extra)

        with open(snap, "rb") as fh, pytest.raises(RestoreError) as err:
            restore_files(fh, LocalServer(target_of(dest), start=start))
        assert "previous files were put back" in str(err.value)
        assert calls == [["--appendonly", "no"], []]
        assert dest.client().keys("*") == [b"old"]
        names = sorted(os.listdir(dest.data_dir))
        assert "appendonlydir" in names and not [n for n in names if "pre_restore" in n]
        assert [n.split(".failed_restore_")[0] for n in names if "failed_restore" in n] == [
            "dump.rdb"
        ]


def test_remote_restore_refuses_a_non_empty_target_and_leaves_it_untouched(
    tmp_path: Path,
) -> None:
    with ThrowawayRedis() as r:
        fill(r, dbs=range(2), per_db=3)
        snap = backup_to(RedisSource(target_of(r)), tmp_path / "snap.rdb")
    with ThrowawayRedis(password="target-pw") as dest:
        dest.client(db=1).set(b"s:1:0", "current")
        before = contents(dest, range(16))
        with open(snap, "rb") as fh, pytest.raises(RestoreError) as err:
            restore_remote(fh, target_of(dest))
        assert "db 1 holds 1 keys" in str(err.value) and "\n" not in str(err.value)
        assert contents(dest, range(16)) == before


def test_interrupted_remote_restore_then_rerun_with_replace_completes(tmp_path: Path) -> None:
    with ThrowawayRedis() as r:
        fill(r, dbs=range(2), per_db=30)
        want = contents(r, range(2))
        snap = backup_to(RedisSource(target_of(r)), tmp_path / "snap.rdb")
    seen_argv: list[bytes] = []

    def interrupt(db: int, done: int) -> None:
        for pid in os.listdir("/proc"):  # every process running during the replay
            if pid.isdigit():
                with contextlib.suppress(OSError):
                    seen_argv.append(Path(f"/proc/{pid}/cmdline").read_bytes())
        raise KeyboardInterrupt

    with ThrowawayRedis(password=PASSWORD) as dest:
        with open(snap, "rb") as fh, pytest.raises(KeyboardInterrupt):
            restore_remote(fh, target_of(dest), batch=20, progress=interrupt)
        partial = dest.client(db=0).dbsize()
        assert 0 < partial < len(want[0])
        with open(snap, "rb") as fh, pytest.raises(RestoreError):
            restore_remote(fh, target_of(dest))
        with open(snap, "rb") as fh:
            restore_remote(fh, target_of(dest), replace=True, batch=20)
        assert_same(want, contents(dest, range(2)))
    assert [a for a in seen_argv if b"redis-server" in a]  # the target, at least
    assert not [a for a in seen_argv if PASSWORD.encode() in a or b"requirepass" in a]


def test_acl_user_from_the_url_takes_the_snapshot(tmp_path: Path) -> None:
    with ThrowawayRedis(password="default-pw", acl_user=("backup", "acl-pw")) as r:
        r.client().set("k", "v")
        target = RedisTarget.from_url(f"redis://backup:acl-pw@127.0.0.1:{r.port}")
        src = RedisSource(target)
        snap = backup_to(src, tmp_path / "snap.rdb")
        assert src.manifest_section()["keys"] == {"0": 1}
        assert check_file(snap).keys == {0: 1}
        # The same user with the default user's password is refused, in one line.
        wrong = RedisTarget.from_url(f"redis://backup:default-pw@127.0.0.1:{r.port}")
        with pytest.raises(SourceError, match="authentication failed") as err:
            backup_to(RedisSource(wrong), tmp_path / "other.rdb")
        assert "default-pw" not in str(err.value)
