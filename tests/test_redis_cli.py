"""`rfbackup backup redis` / `list` / `restore redis` / `prune` end to end, through the real
command, on real redis-server processes and a real S3 server (SeaweedFS): every restore is
proved by comparing keys, types, values and TTLs with the source."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import RFBACKUP, base_env, new_bucket
from redis_support import assert_same, contents, fill

from rfbackup import config
from rfbackup.prune import prune
from rfbackup.sandbox.redis import ThrowawayRedis
from rfbackup.sandbox.seaweedfs import ThrowawayS3

PASSWORD = "cli-redis-secret-pw"
DBS = range(4)


@pytest.fixture(scope="module")
def source() -> Iterator[ThrowawayRedis]:
    with ThrowawayRedis(password=PASSWORD) as r:
        fill(r, dbs=DBS, per_db=10)
        yield r


def redis_env(r: ThrowawayRedis, password: str | None = PASSWORD) -> dict[str, str]:
    out = {"REDIS_URL": f"redis://127.0.0.1:{r.port}"}
    if password:
        out["REDIS_PASSWORD"] = password
    return out


@pytest.fixture
def env(s3: ThrowawayS3, tmp_path: Path) -> dict[str, str]:
    return {
        **base_env(tmp_path),
        **s3.env(),
        "RFBACKUP_REPOSITORY": f"s3://{new_bucket(s3)}/rf",
        "RFBACKUP_LOCKS__DIR": str(tmp_path / "locks"),
        "RFBACKUP_LOG_FILE": str(tmp_path / "rfbackup.log"),
        "RFBACKUP_BACKUP_DIR": str(tmp_path / "backups"),
    }


def rf(env: dict[str, str], *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*RFBACKUP, *args], env={**env, **extra}, capture_output=True, text=True, timeout=240
    )


def one_error(stderr: str) -> bool:
    """The failure is one line (info lines about what was being done may come before)."""
    return len([line for line in stderr.splitlines() if "ERROR" in line]) == 1


def backup(env: dict[str, str], r: ThrowawayRedis, *more: str) -> dict[str, Any]:
    done = rf(env, "backup", "redis", "--json", *more, **redis_env(r))
    assert done.returncode == 0, done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def test_backup_list_restore_compare_and_no_password_anywhere(
    source: ThrowawayRedis, env: dict[str, str], s3: ThrowawayS3, tmp_path: Path
) -> None:
    doc = backup(env, source, "--verify-load")
    assert doc["component"] == "redis" and doc["name"].startswith("redis/")
    assert doc["name"].endswith(".rdb.zst") and doc["method"] == "sync"
    assert doc["keys"] == {str(db): 51 for db in DBS}
    assert doc["verify_load"]["dbsize"] == doc["keys"]

    listed = rf(env, "list", "--component", "redis", "--json")
    assert listed.returncode == 0, listed.stderr
    (entry,) = json.loads(listed.stdout)
    assert (entry["name"], entry["status"]) == (doc["name"], "ok")
    assert entry["subject"] == f"127.0.0.1:{source.port}/all"

    bucket = env["RFBACKUP_REPOSITORY"].removeprefix("s3://").split("/")[0]
    raw = s3.client().get_object(Bucket=bucket, Key=f"rf/{doc['name']}.manifest.json")
    manifest = json.loads(raw["Body"].read())
    section = manifest["source"]
    assert section["redis_version"] and section["rdb_version"] >= 9
    assert section["used_memory"] > 0 and section["aof_enabled"] is False
    assert isinstance(section["latest_fork_usec"], int) and section["method"] == "sync"
    assert section["keys"] == doc["keys"]

    with ThrowawayRedis(password="other-pw") as dest:
        dry = rf(env, "restore", "redis", doc["name"], "--dry-run", **redis_env(dest, "other-pw"))
        assert dry.returncode == 0, dry.stderr
        assert f"127.0.0.1:{dest.port}" in dry.stdout and "db 3 (51 keys)" in dry.stdout
        assert dest.client().dbsize() == 0
        done = rf(env, "restore", "redis", doc["name"], "--yes", **redis_env(dest, "other-pw"))
        assert done.returncode == 0, done.stderr
        assert_same(contents(source, DBS), contents(dest, DBS))

    # The password is in no argument list, log, output or stored object.
    log = Path(env["RFBACKUP_LOG_FILE"]).read_text()
    assert "backup redis/" in log
    for text in (log, json.dumps(manifest), listed.stdout, done.stdout, done.stderr):
        assert PASSWORD not in text
    objects = s3.client().list_objects_v2(Bucket=bucket)["Contents"]
    for obj in objects:
        body = s3.client().get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
        assert PASSWORD.encode() not in body, obj["Key"]


def test_restore_refuses_a_non_empty_target_then_replace_and_match(
    source: ThrowawayRedis, env: dict[str, str]
) -> None:
    name = backup(env, source)["name"]
    with ThrowawayRedis() as dest:
        dest.client(db=2).set("s:2:0", "current")
        dest.client(db=2).set("only-here", "kept")
        refused = rf(env, "restore", "redis", name, "--yes", **redis_env(dest, None))
        assert refused.returncode != 0
        assert one_error(refused.stderr)
        assert "db 2 holds 2 keys" in refused.stderr and "--replace" in refused.stderr
        assert dest.client().dbsize() == 0 and dest.client(db=2).get("s:2:0") == b"current"
        # Without a terminal and without --yes: nothing happens.
        asked = rf(env, "restore", "redis", name, "--replace", **redis_env(dest, None))
        assert asked.returncode != 0 and "--yes" in asked.stderr
        partial = rf(
            env, "restore", "redis", name, "--yes", "--db", "1", "--match", "ttl:*",
            **redis_env(dest, None),
        )  # fmt: skip
        assert partial.returncode == 0, partial.stderr
        assert sorted(dest.client(db=1).keys("*")) == sorted(source.client(db=1).keys("ttl:*"))
        done = rf(env, "restore", "redis", name, "--yes", "--replace", **redis_env(dest, None))
        assert done.returncode == 0, done.stderr
        assert dest.client(db=2).get("only-here") == b"kept"  # never deleted
        dest.client(db=2).delete("only-here")
        assert_same(contents(source, DBS), contents(dest, DBS))


def test_a_tampered_snapshot_is_refused_before_the_target_is_touched(
    source: ThrowawayRedis, env: dict[str, str], s3: ThrowawayS3
) -> None:
    name = backup(env, source)["name"]
    bucket = env["RFBACKUP_REPOSITORY"].removeprefix("s3://").split("/")[0]
    key = f"rf/{name}"
    data = bytearray(s3.client().get_object(Bucket=bucket, Key=key)["Body"].read())
    data[len(data) // 2] ^= 0xFF
    s3.client().put_object(Bucket=bucket, Key=key, Body=bytes(data))
    with ThrowawayRedis() as dest:
        dest.client().set("keep", "me")
        done = rf(env, "restore", "redis", name, "--yes", "--replace", **redis_env(dest, None))
        assert done.returncode != 0 and "corrupted" in done.stderr
        assert one_error(done.stderr)
        assert dest.client().keys("*") == [b"keep"]


@contextlib.contextmanager
def daemonized(r: ThrowawayRedis) -> Iterator[str]:
    """A --start-command for ``r`` (redis-server with its config file, as a daemon), and
    the daemon shut down afterwards: rfbackup restarts the server itself."""
    pidfile = r.root / "redis.pid"
    try:
        yield f"redis-server {shlex.quote(str(r.conf))} --daemonize yes --pidfile {pidfile}"
    finally:
        with contextlib.suppress(Exception):
            r.client(socket_timeout=5).shutdown(nosave=True)


def test_files_restore_into_an_aof_server(source: ThrowawayRedis, env: dict[str, str]) -> None:
    name = backup(env, source)["name"]
    with ThrowawayRedis(password="files-pw", appendonly=True) as dest, daemonized(dest) as start:
        dest.client().set("old", "data")
        done = rf(
            env, "restore", "redis", name, "--files", "--start-command", start, "--yes",
            "--json", **redis_env(dest, "files-pw"),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)["result"]
        assert result["appendonly"] is True and result["keys"] == {str(db): 51 for db in DBS}
        c = dest.client()
        assert c.info("persistence")["aof_enabled"] == 1
        assert_same(contents(source, DBS), contents(dest, DBS))
        aside = sorted(p.name for p in dest.data_dir.iterdir() if ".pre_restore_" in p.name)
        assert [n.split(".pre_restore_")[0] for n in aside] == ["appendonlydir"]


def test_a_failed_files_restore_puts_the_old_files_back(
    source: ThrowawayRedis, env: dict[str, str]
) -> None:
    name = backup(env, source)["name"]
    with ThrowawayRedis(appendonly=True) as dest, daemonized(dest) as start:
        dest.client().set("old", "data")
        # Fails when asked to start with the snapshot (AOF off), works for the put-back.
        flaky = f'sh -c \'case "$*" in *appendonly*) exit 1;; esac; exec {start} "$@"\' sh'
        done = rf(
            env, "restore", "redis", name, "--files", "--start-command", flaky, "--yes",
            **redis_env(dest, None),
        )  # fmt: skip
        assert done.returncode != 0
        assert "previous files were put back" in done.stderr
        assert one_error(done.stderr)
        assert dest.client().keys("*") == [b"old"]
        names = sorted(os.listdir(dest.data_dir))
        assert "appendonlydir" in names and not [n for n in names if "pre_restore" in n]


def test_retention_keeps_seven_days_per_component(
    source: ThrowawayRedis, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    first = backup(env, source)["name"]
    second = backup(env, source)["name"]
    for k, v in {**env, **redis_env(source), "RFBACKUP_REDIS__KEEP_MIN": "1"}.items():
        monkeypatch.setenv(k, v)
    s = config.load()
    assert (s.redis.keep_days, s.redis.keep_min) == (7, 1)
    common: dict[str, Any] = {"keep_days": None, "keep_min": None, "include_unmanaged": False}
    soon = datetime.now(UTC) + timedelta(days=6)
    kept = prune(s, dry_run=False, now=soon, components=["redis"], **common)
    assert not [d for _, d in kept if d.delete]
    later = datetime.now(UTC) + timedelta(days=8)
    done = prune(s, dry_run=False, now=later, components=["redis"], **common)
    assert sorted(d.entry.name for _, d in done if d.delete) == [first]
    listed = json.loads(rf(env, "list", "--component", "redis", "--json").stdout)
    assert [e["name"] for e in listed] == [second]


def test_s3_down_in_staging_falls_back_to_the_local_folder(
    source: ThrowawayRedis, env: dict[str, str], tmp_path: Path
) -> None:
    down = {
        "RFBACKUP_ENV": "staging",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",  # nothing listens there
        "RFBACKUP_S3__MAX_ATTEMPTS": "1",
    }
    done = rf(env, "backup", "redis", "--json", **redis_env(source), **down)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["pending_upload"] is True and doc["repository"] == str(tmp_path / "backups")
    stored = tmp_path / "backups" / doc["name"]
    assert stored.is_file() and Path(str(stored) + ".manifest.json").is_file()
    with ThrowawayRedis() as dest:
        back = rf(env, "restore", "redis", str(stored), "--yes", **redis_env(dest, None), **down)
        assert back.returncode == 0, back.stderr
        assert_same(contents(source, DBS), contents(dest, DBS))


def test_status_and_metrics_see_redis_snapshots(
    source: ThrowawayRedis, env: dict[str, str], tmp_path: Path
) -> None:
    def redis_state(*args: str) -> dict[str, Any]:
        done = rf(env, "status", "--json", *args)
        comps = json.loads(done.stdout)["components"]
        found: dict[str, Any] = next(c for c in comps if c["component"] == "redis")
        return found

    assert redis_state()["state"] == "not set up"  # no snapshot: Redis may not be used here
    metrics = tmp_path / "textfile"
    metrics.mkdir()
    env["RFBACKUP_METRICS__TEXTFILE_DIR"] = str(metrics)
    backup(env, source)
    prom = (metrics / "rfbackup_development_redis_backup.prom").read_text()
    assert 'component="redis"' in prom and "backup_last_success_timestamp" in prom
    now = redis_state()
    assert now["state"] == "ok" and now["threshold_hours"] == 3
    later = (datetime.now(UTC) + timedelta(hours=4)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert redis_state("--now", later)["state"] == "stale"


def test_production_encrypts_and_replicates_and_the_replica_alone_restores(
    source: ThrowawayRedis,
    env: dict[str, str],
    s3: ThrowawayS3,
    s3_replica: ThrowawayS3,
    tmp_path: Path,
) -> None:
    import pyrage

    from rfbackup import signing

    identity = pyrage.x25519.Identity.generate()
    (tmp_path / "age.key").write_text(str(identity) + "\n")
    (tmp_path / "age.key").chmod(0o600)
    signing.generate(tmp_path / "signing.key")  # production trusts signed manifests only
    prod = {
        "RFBACKUP_ENV": "production",
        "RFBACKUP_SIGNING__KEY_FILE": str(tmp_path / "signing.key"),
        "RFBACKUP_SIGNING__PUBLIC_KEYS_FILE": str(tmp_path / "signing.key.pub"),
        "RFBACKUP_ENCRYPTION__RECIPIENTS": str(identity.to_public()),
        "RFBACKUP_ENCRYPTION__IDENTITY_FILE": str(tmp_path / "age.key"),
        "RFBACKUP_REPLICA__URL": f"s3://{new_bucket(s3_replica)}/dr",
        "RFBACKUP_REPLICA__ENDPOINT_URL": s3_replica.endpoint,
        "RFBACKUP_REPLICA__ACCESS_KEY_ID": s3_replica.access_key,
        "RFBACKUP_REPLICA__SECRET_ACCESS_KEY": s3_replica.secret_key,
    }
    done = rf(env, "backup", "redis", "--json", **redis_env(source), **prod)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["encrypted"] and doc["name"].endswith(".rdb.zst.age")
    assert doc["replicated_to"] == prod["RFBACKUP_REPLICA__URL"]
    bucket = env["RFBACKUP_REPOSITORY"].removeprefix("s3://").split("/")[0]
    stored = s3.client().get_object(Bucket=bucket, Key=f"rf/{doc['name']}")["Body"].read()
    assert stored.startswith(b"age-encryption.org/v1") and b"REDIS00" not in stored
    manifest = s3.client().get_object(Bucket=bucket, Key=f"rf/{doc['name']}.manifest.json")
    assert json.loads(manifest["Body"].read()).get("signature")
    # The primary region is gone: the replica alone restores it.
    from_replica = {
        **{k: v for k, v in prod.items() if not k.startswith("RFBACKUP_REPLICA__")},
        **s3_replica.env(),
        "RFBACKUP_REPOSITORY": prod["RFBACKUP_REPLICA__URL"],
    }
    with ThrowawayRedis() as dest:
        back = rf(
            env, "restore", "redis", doc["name"], "--yes", **redis_env(dest, None), **from_replica
        )
        assert back.returncode == 0, back.stderr
        assert_same(contents(source, DBS), contents(dest, DBS))


def test_verify_load_without_redis_server_is_refused_before_anything_is_fetched(
    source: ThrowawayRedis, env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "bin").mkdir()  # a PATH without redis-server, as in the rfbackup image
    done = rf(
        env, "backup", "redis", "--verify-load", **redis_env(source), PATH=str(tmp_path / "bin")
    )
    assert done.returncode == 3 and one_error(done.stderr), done.stderr
    assert "--verify-load needs redis-server" in done.stderr
    assert json.loads(rf(env, "list", "--component", "redis", "--json").stdout) == []


def test_a_wrong_password_is_one_line_with_its_exit_code_and_nothing_stored(
    source: ThrowawayRedis, env: dict[str, str]
) -> None:
    done = rf(env, "backup", "redis", **redis_env(source, "wrong-redis-pw"))
    assert done.returncode not in (0, 1)  # a distinct code, not a crash
    assert one_error(done.stderr) and "authentication failed" in done.stderr
    assert "wrong-redis-pw" not in done.stderr + done.stdout
    listed = json.loads(rf(env, "list", "--component", "redis", "--json").stdout)
    assert listed == []


def test_the_server_killed_mid_fetch_leaves_no_backup_and_nothing_listed(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from collections.abc import Generator

    from rfbackup import catalog
    from rfbackup.engine import job
    from rfbackup.errors import SourceError
    from rfbackup.sources.redis import RedisSource

    with ThrowawayRedis() as r:
        c = r.client()
        for i in range(24):  # 24 MB of incompressible values: more than socket buffers hold
            c.set(f"k{i}", os.urandom(1 << 20))

        class KilledAfterFirstChunk(RedisSource):
            def stream(self) -> Generator[bytes]:
                for i, chunk in enumerate(super().stream()):
                    if i == 1:
                        r.kill()
                    yield chunk

        for k, v in {**env, **redis_env(r, None)}.items():
            monkeypatch.setenv(k, v)
        s = config.load()
        source = KilledAfterFirstChunk(s.redis_target(), chunk_size=64 * 1024)
        with pytest.raises(SourceError, match="connection lost"):
            job.run(s, source)
    repo = s.open_repository()
    assert [e for e in catalog.scan(repo) if e.component != "unknown"] == []
    assert [o.key for o in repo.list(include_partial=True) if "redis/" in o.key] == []
