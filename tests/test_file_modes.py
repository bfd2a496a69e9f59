"""File hygiene: what rfbackup leaves on disk is private, and its logs cannot be forged."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
from pathlib import Path

from conftest import Env, new_bucket

from rfbackup import logs
from rfbackup.sandbox.seaweedfs import ThrowawayS3


def test_newline_in_a_file_name_cannot_forge_a_log_line(env: Env) -> None:
    forged = "x.sql.gz\n2026-01-01T00:00:00Z INFO restored everything fine\x1b[2K"
    (env.cwd / forged).write_bytes(b"not a backup")
    r = env.run("restore", forged, "--yes")
    assert r.returncode != 0
    for text in (r.stderr, env.log_file.read_text()):
        lines = text.splitlines()
        assert not any(line.startswith("2026-01-01T00:00:00Z INFO") for line in lines), text
        assert "\x1b" not in text
        assert "\\n2026-01-01T00:00:00Z INFO" in text


def test_formatter_escapes_every_control_character(tmp_path: Path) -> None:
    logs.setup(tmp_path / "l.log")
    logs.log.info("name %s", "a\rb\nc\x00d\x85e\tf")
    for h in logs.log.handlers:
        h.flush()
    text = (tmp_path / "l.log").read_text()
    assert text.count("\n") == 1, text
    assert "a\\rb\\nc\\x00d\\x85e\\tf" in text
    logging.getLogger("rfbackup").handlers.clear()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_backups_logs_and_locks_are_private(env: Env) -> None:
    os.umask(0o022)  # the usual umask: files would be 0644 unless created private
    locks = env.cwd / "state" / "locks"
    r = env.run("backup", "postgres", RFBACKUP_LOCKS__DIR=str(locks))
    assert r.returncode == 0, r.stderr
    files = sorted(p for p in env.backups.rglob("*") if p.is_file())
    names = {p.name for p in files}
    # the data file, its manifest, and the sidecars (roles, database properties...)
    assert len(files) >= 3 and r.stdout.strip() in names, files
    assert f"{r.stdout.strip()}.manifest.json" in names
    assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}
    assert mode(env.backups) == 0o700
    assert mode(env.log_file) == 0o600 and mode(env.log_file.parent) == 0o700
    lock_files = list(locks.iterdir())
    assert len(lock_files) == 1 and mode(lock_files[0]) == 0o600 and mode(locks) == 0o700
    got = env.run("get", r.stdout.strip(), str(env.cwd / "download"))
    assert got.returncode == 0, got.stderr
    downloaded = list((env.cwd / "download").iterdir())
    assert {p.name for p in downloaded} == names
    assert {mode(p) for p in downloaded} == {0o600}


def test_an_age_identity_readable_by_others_is_reported(env: Env, tmp_path: Path) -> None:
    key = tmp_path / "age-identity.txt"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    public = subprocess.run(
        ["age-keygen", "-y", str(key)], check=True, capture_output=True, text=True
    ).stdout.strip()
    b = env.run("backup", "postgres", RFBACKUP_ENCRYPTION__RECIPIENTS=public)
    assert b.returncode == 0, b.stderr
    key.chmod(0o644)
    r = env.run(
        "restore",
        b.stdout.strip(),
        "--yes",
        "--target-db",
        f"{env.dbname}_age",
        RFBACKUP_ENCRYPTION__IDENTITY_FILE=str(key),
    )
    assert r.returncode == 0, r.stderr
    assert "age identity file" in r.stderr and "readable by others" in r.stderr


def test_s3_objects_have_no_public_grant(env: Env, s3: ThrowawayS3) -> None:
    bucket = new_bucket(s3)
    extra = {**s3.env(), "RFBACKUP_REPOSITORY": f"s3://{bucket}/rf"}
    r = env.run("backup", "postgres", **extra)
    assert r.returncode == 0, r.stderr
    client = s3.client()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert len(keys) >= 3 and any(k.endswith(".manifest.json") for k in keys), keys
    for key in keys:
        grants = client.get_object_acl(Bucket=bucket, Key=key)["Grants"]
        assert grants, key  # the server answers with the owner's grant
        uris = [g["Grantee"].get("URI", "") for g in grants]
        assert not [u for u in uris if "AllUsers" in u or "AuthenticatedUsers" in u], grants
        assert {g["Grantee"].get("Type") for g in grants} == {"CanonicalUser"}
