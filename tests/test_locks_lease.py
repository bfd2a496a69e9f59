"""Locks that cannot be turned against their user, and leases that keep hosts apart."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from conftest import RFBACKUP, Env, base_env, new_bucket, table_checksums
from test_backup_faults import shim_bin

from rfbackup.locks import lock_path
from rfbackup.sandbox.seaweedfs import ThrowawayS3


def s3_vars(env: Env, s3: ThrowawayS3, bucket: str, **extra: str) -> dict[str, str]:
    return {**s3.env(), "RFBACKUP_REPOSITORY": f"s3://{bucket}/rf", **extra}


def test_symlink_planted_at_the_lock_path_is_refused_and_its_target_unharmed(env: Env) -> None:
    locks = env.cwd / "locks"
    locks.mkdir(mode=0o700)
    victim = env.cwd / "shadow"
    victim.write_text("root:secret\n")
    victim.chmod(0o600)
    planted = lock_path(str(env.backups), "postgres", locks)
    planted.symlink_to(victim)
    r = env.run("backup", "postgres", RFBACKUP_LOCKS__DIR=str(locks))
    assert r.returncode == 8, r.stderr
    assert "cannot open lock" in r.stderr
    assert victim.read_text() == "root:secret\n"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o600
    assert env.data_files() == []


def test_a_shared_or_foreign_lock_folder_is_refused(env: Env) -> None:
    shared = env.cwd / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp
    r = env.run("backup", "postgres", RFBACKUP_LOCKS__DIR=str(shared))
    assert r.returncode == 3 and "writable by group or others" in r.stderr
    foreign = env.cwd / "foreign"
    foreign.mkdir(mode=0o700)
    shutil.chown(foreign, "postgres", "postgres")
    r = env.run("backup", "postgres", RFBACKUP_LOCKS__DIR=str(foreign))
    assert r.returncode == 3 and "belongs to uid" in r.stderr
    assert list(shared.iterdir()) == [] and list(foreign.iterdir()) == []
    assert env.data_files() == []


def test_root_locks_are_private_and_never_in_tmp(env: Env, s3: ThrowawayS3) -> None:
    bucket = new_bucket(s3)
    extra = s3_vars(env, s3, bucket)
    vars_ = {k: v for k, v in env.vars.items() if k != "XDG_RUNTIME_DIR"}  # like cron
    r = subprocess.run(
        [*RFBACKUP, "backup", "postgres"],
        cwd=env.cwd,
        env={**vars_, **extra},
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    path = lock_path(f"s3://{bucket}/rf", "postgres", Path("/run/rfbackup"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(Path("/run/rfbackup").stat().st_mode) == 0o700
    assert not lock_path(f"s3://{bucket}/rf", "postgres", Path("/tmp/rfbackup-locks")).exists()


def test_a_root_run_does_not_break_later_runs_as_postgres(env: Env, s3: ThrowawayS3) -> None:
    bucket = new_bucket(s3)
    extra = s3_vars(env, s3, bucket)
    assert env.run("backup", "postgres", **extra).returncode == 0
    work = Path(tempfile.mkdtemp(prefix="rfb-as-postgres-"))  # pytest's tmp is root-only
    shutil.chown(work, "postgres", "postgres")
    vars_ = {**base_env(work), **env.pg.env(env.dbname), **extra, "HOME": "/var/lib/postgresql"}
    vars_.pop("XDG_RUNTIME_DIR", None)
    r = subprocess.run(
        [
            "runuser",
            "-u",
            "postgres",
            "--",
            "env",
            *(f"{k}={v}" for k, v in vars_.items()),
            *RFBACKUP,
            "backup",
            "postgres",
        ],
        cwd=work,
        capture_output=True,
        text=True,
    )
    shutil.rmtree(work)
    assert r.returncode == 0, r.stderr
    listed = json.loads(env.run("list", "--json", **extra).stdout)
    assert [e["status"] for e in listed] == ["ok", "ok"]


def put_lease(s3: ThrowawayS3, bucket: str, component: str, host: str, expires_in: float) -> None:
    now = time.time()
    doc = {
        "format": "rfbackup-lease/1",
        "component": component,
        "owner": "ghost",
        "host": host,
        "pid": 4242,
        "pid_start": "1",
        "acquired_at": now - 60,
        "heartbeat_at": now - 1,
        "expires_at": now + expires_in,
        "token": "feedface",
    }
    s3.client().put_object(
        Bucket=bucket, Key=f"rf/locks/{component}.lease", Body=json.dumps(doc).encode()
    )


def lease_keys(s3: ThrowawayS3, bucket: str) -> list[str]:
    listed = s3.client().list_objects_v2(Bucket=bucket, Prefix="rf/locks/")
    return [o["Key"] for o in listed.get("Contents", [])]


def test_a_live_lease_of_another_host_excludes_backup_and_prunes(env: Env, s3: ThrowawayS3) -> None:
    bucket = new_bucket(s3)
    extra = s3_vars(env, s3, bucket)
    put_lease(s3, bucket, "postgres", "ghost-host", 600)
    put_lease(s3, bucket, "postgres-base", "ghost-host", 600)
    r = env.run("backup", "postgres", **extra)
    assert r.returncode == 5, r.stderr
    assert "already running on host ghost-host" in r.stderr
    r = env.run("prune", "--keep-days", "0", "--keep-min", "0", **extra)
    assert r.returncode == 5 and "ghost-host" in r.stderr
    r = env.run("pitr", "prune", **extra)
    assert r.returncode == 5 and "ghost-host" in r.stderr
    r = env.run("unlock", **extra)
    assert r.returncode == 5 and "--force" in r.stderr

    shown = env.run("unlock", "--force", "--dry-run", "--json", **extra)
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert doc["holder"]["host"] == "ghost-host" and doc["holder"]["live"] is True
    assert doc["removed"] is False
    assert "rf/locks/postgres.lease" in lease_keys(s3, bucket)

    r = env.run("unlock", "--force", **extra)
    assert r.returncode == 0, r.stderr
    assert lease_keys(s3, bucket) == ["rf/locks/postgres-base.lease"]
    r = env.run("backup", "postgres", **extra)
    assert r.returncode == 0, r.stderr
    assert lease_keys(s3, bucket) == ["rf/locks/postgres-base.lease"]  # ours was released


def test_an_expired_lease_is_broken_with_a_warning(env: Env, s3: ThrowawayS3) -> None:
    bucket = new_bucket(s3)
    extra = s3_vars(env, s3, bucket)
    put_lease(s3, bucket, "postgres", "ghost-host", -1)
    r = env.run("backup", "postgres", **extra)
    assert r.returncode == 0, r.stderr
    assert "breaking the stale lease" in r.stderr and "ghost-host" in r.stderr
    assert lease_keys(s3, bucket) == []


def test_two_hosts_one_bucket(env: Env, s3: ThrowawayS3, tmp_path: Path) -> None:
    """Host A backs up slowly; host B (another hostname, another lock folder) must refuse,
    must not take A's running upload for abandoned, and A's backup must restore."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare is needed to give the second host its own hostname")
    bucket = new_bucket(s3)
    extra = s3_vars(env, s3, bucket, RFBACKUP_LOCKS__LEASE_SECONDS="3")
    go = tmp_path / "go"  # host A's pg_dump finishes only once the test has looked
    bindir = shim_bin(tmp_path, f'while [ ! -e "{go}" ]; do sleep 0.05; done')
    before = table_checksums(env.pg.dsn(env.dbname))
    a = env.popen(
        "backup",
        "postgres",
        "--json",
        RFBACKUP_PG_BIN=str(bindir),
        RFBACKUP_LOCKS__DIR=str(tmp_path / "locks-a"),
        **extra,
    )
    try:
        client = s3.client()
        deadline = time.monotonic() + 60
        while not client.list_multipart_uploads(Bucket=bucket).get("Uploads"):
            assert time.monotonic() < deadline and a.poll() is None
            time.sleep(0.05)
        first = json.loads(
            client.get_object(Bucket=bucket, Key="rf/locks/postgres.lease")["Body"].read()
        )
        time.sleep(2)  # more than a third of the lease: a heartbeat has renewed it
        renewed = json.loads(
            client.get_object(Bucket=bucket, Key="rf/locks/postgres.lease")["Body"].read()
        )
        assert renewed["token"] == first["token"]
        assert renewed["expires_at"] > first["expires_at"]

        host_b = {**env.vars, **extra, "RFBACKUP_LOCKS__DIR": str(tmp_path / "locks-b")}
        for args in (["backup", "postgres"], ["list", "--json"]):
            b = subprocess.run(
                [
                    "unshare",
                    "-u",
                    "sh",
                    "-c",
                    'hostname host-b && exec "$@"',
                    "sh",
                    *RFBACKUP,
                    *args,
                ],
                cwd=env.cwd,
                env=host_b,
                capture_output=True,
                text=True,
            )
            if args[0] == "backup":
                assert b.returncode == 5, b.stderr
                assert f"already running on host {os.uname().nodename}" in b.stderr
            else:
                assert b.returncode == 0, b.stderr
                assert [e["status"] for e in json.loads(b.stdout)] == ["in-progress"]
        assert client.list_multipart_uploads(Bucket=bucket).get("Uploads")  # still there

    finally:
        go.touch()  # never leave host A waiting, even when an assertion failed
    out, err = a.communicate(timeout=120)
    assert a.returncode == 0, err
    name = json.loads(out)["name"]
    assert lease_keys(s3, bucket) == []
    r = env.run("restore", name, "--yes", "--target-db", f"{env.dbname}_a", **extra)
    assert r.returncode == 0, r.stderr
    assert table_checksums(env.pg.dsn(f"{env.dbname}_a")) == before


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_conditional_writes_behind_the_lease(backend: str, s3: ThrowawayS3, tmp_path: Path) -> None:
    from rfbackup.storage import open_repository
    from rfbackup.storage.s3 import S3Settings

    if backend == "local":
        repo = open_repository(str(tmp_path / "repo"))
    else:
        bucket = new_bucket(s3)
        repo = open_repository(
            f"s3://{bucket}/rf",
            S3Settings(s3.endpoint, s3.region, s3.access_key, s3.secret_key),
        )
    assert repo.read_tagged("locks/x.lease") is None
    tag = repo.put_conditional("locks/x.lease", b"one", None)
    assert tag is not None
    assert repo.put_conditional("locks/x.lease", b"two", None) is None  # exists: refused
    assert repo.read_tagged("locks/x.lease") == (b"one", tag)
    assert repo.put_conditional("locks/x.lease", b"three", "not-the-tag") is None
    new = repo.put_conditional("locks/x.lease", b"four", tag)
    assert new is not None and new != tag
    assert repo.read_tagged("locks/x.lease") == (b"four", new)
    if backend == "local":
        assert stat.S_IMODE((tmp_path / "repo" / "locks" / "x.lease").stat().st_mode) == 0o600


def test_a_run_whose_lease_was_taken_over_publishes_nothing(
    env: Env, s3: ThrowawayS3, tmp_path: Path
) -> None:
    bucket = new_bucket(s3)
    extra = s3_vars(env, s3, bucket, RFBACKUP_LOCKS__LEASE_SECONDS="3")
    proc = env.popen(
        "backup", "postgres", RFBACKUP_PG_BIN=str(shim_bin(tmp_path, "sleep 4")), **extra
    )
    client = s3.client()
    deadline = time.monotonic() + 60
    while not client.list_multipart_uploads(Bucket=bucket).get("Uploads"):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    put_lease(s3, bucket, "postgres", "usurper-host", 600)  # another host broke our lease
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 5, err
    assert "took over" in err
    listed = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert listed == ["rf/locks/postgres.lease"]  # no data, roles or manifest published
    assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")
    assert lease_keys(s3, bucket) == ["rf/locks/postgres.lease"]  # the usurper's, untouched
    body = client.get_object(Bucket=bucket, Key="rf/locks/postgres.lease")["Body"].read()
    assert json.loads(body)["host"] == "usurper-host"
