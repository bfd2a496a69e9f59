"""Signed manifests: a bucket writer can change bytes and sha256s, but not the signature."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest
from conftest import RFBACKUP, Env, base_env, make_database, table_checksums

from rfbackup.sandbox.postgres import ThrowawayPostgres


def keygen(where: Path, name: str = "signing.key") -> tuple[Path, str]:
    import subprocess

    r = subprocess.run(
        [*RFBACKUP, "keys", "generate", "--out", str(where / name), "--json"],
        capture_output=True,
        text=True,
        cwd=where,
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    return Path(doc["private_key"]), doc["public_key"]


@pytest.fixture(scope="module")
def signed(
    pg: ThrowawayPostgres, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path, str]:
    dbname = make_database(pg, size=200_000)
    cwd = tmp_path_factory.mktemp("signed")
    key, public = keygen(cwd)
    e = Env(pg, cwd, dbname, {**base_env(cwd), **pg.env(dbname)})
    r = e.run("backup", "postgres", RFBACKUP_SIGNING__KEY_FILE=str(key))
    assert r.returncode == 0, r.stderr
    return dbname, cwd, public


@pytest.fixture
def copy(
    signed: tuple[str, Path, str], pg: ThrowawayPostgres, tmp_path: Path
) -> tuple[Env, str, str]:
    dbname, src, public = signed
    shutil.copytree(src / "backups", tmp_path / "backups")
    name = next(
        p.name for p in (tmp_path / "backups").glob("backup_*.sql.gz") if "roles" not in p.name
    )
    return Env(pg, tmp_path, dbname, {**base_env(tmp_path), **pg.env(dbname)}), name, public


def manifest_of(env: Env, name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((env.backups / f"{name}.manifest.json").read_text())
    return doc


def test_keys_generate_writes_a_private_0600_key_and_never_overwrites(tmp_path: Path) -> None:
    key, public = keygen(tmp_path)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in key.read_bytes()
    assert (tmp_path / "signing.key.pub").read_text().strip() == public
    assert public.startswith("ed25519:")
    before = key.read_bytes()
    import subprocess

    r = subprocess.run(
        [*RFBACKUP, "keys", "generate", "--out", str(key)], capture_output=True, text=True
    )
    assert r.returncode == 3 and "already exists" in r.stderr
    assert key.read_bytes() == before


def test_signed_backup_restores_with_its_public_key(copy: tuple[Env, str, str]) -> None:
    env, name, public = copy
    sig = manifest_of(env, name)["signature"]
    assert sig["algorithm"] == "ed25519" and sig["value"]
    before = table_checksums(env.pg.dsn(env.dbname))
    r = env.run(
        "restore",
        name,
        "--yes",
        "--json",
        "--target-db",
        f"{env.dbname}_s",
        RFBACKUP_SIGNING__PUBLIC_KEYS=public,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["signature"] == f"valid (key {sig['key_id']})"
    assert table_checksums(env.pg.dsn(f"{env.dbname}_s")) == before


def test_the_reported_attack_is_refused_before_any_database_is_touched(
    copy: tuple[Env, str, str],
) -> None:
    """Append a gzip member with a shell command; fix the manifest's sha256 and size."""
    env, name, public = copy
    marker = env.cwd / "pwned"
    path = env.backups / name
    data = path.read_bytes() + gzip.compress(f"\\! touch {marker}\n".encode())
    path.write_bytes(data)
    m = manifest_of(env, name)
    m["data"].update(sha256=hashlib.sha256(data).hexdigest(), stored_bytes=len(data))
    (env.backups / f"{name}.manifest.json").write_text(json.dumps(m))
    dbs, rows = env.databases(), table_checksums(env.pg.dsn(env.dbname))
    r = env.run("restore", name, "--yes", RFBACKUP_SIGNING__PUBLIC_KEYS=public)
    assert r.returncode == 6, r.stderr
    assert "signature does not match" in r.stderr
    assert not marker.exists()
    assert env.databases() == dbs
    assert table_checksums(env.pg.dsn(env.dbname)) == rows
    r = env.run("get", name, str(env.cwd / "dl"), RFBACKUP_SIGNING__PUBLIC_KEYS=public)
    assert r.returncode == 6 and "signature does not match" in r.stderr
    assert not (env.cwd / "dl" / name).exists()


def test_unsigned_and_foreign_signed_need_allow_unverified(
    copy: tuple[Env, str, str], tmp_path: Path
) -> None:
    env, name, public = copy
    _, other = keygen(tmp_path, "other.key")
    r = env.run("restore", name, "--yes", RFBACKUP_SIGNING__PUBLIC_KEYS=other)
    assert r.returncode == 6 and "not trusted" in r.stderr
    m = manifest_of(env, name)
    del m["signature"]
    (env.backups / f"{name}.manifest.json").write_text(json.dumps(m))
    dbs = env.databases()
    r = env.run("restore", name, "--yes", RFBACKUP_SIGNING__PUBLIC_KEYS=public)
    assert r.returncode == 6 and "is not signed" in r.stderr
    assert env.databases() == dbs
    r = env.run(
        "restore",
        name,
        "--yes",
        "--allow-unverified",
        "--json",
        "--target-db",
        f"{env.dbname}_u",
        RFBACKUP_SIGNING__PUBLIC_KEYS=public,
    )
    assert r.returncode == 0, r.stderr
    assert "!!!" in r.stderr and "is not signed" in r.stderr
    assert json.loads(r.stdout)["signature"] == "UNVERIFIED"
    assert f"{env.dbname}_u" in env.databases()


def test_without_a_public_key_warn_or_refuse_when_required(copy: tuple[Env, str, str]) -> None:
    env, name, _ = copy
    dbs = env.databases()
    r = env.run("restore", name, "--yes", RFBACKUP_SIGNING__REQUIRED="true")
    assert r.returncode == 6 and "no trusted public key" in r.stderr
    assert env.databases() == dbs
    r = env.run("restore", name, "--yes", "--target-db", f"{env.dbname}_w", "--env", "staging")
    assert r.returncode == 0, r.stderr
    assert "NOT checked" in r.stderr  # development restores stay quiet about it
    r = env.run("restore", name, "--yes", "--target-db", f"{env.dbname}_d")
    assert r.returncode == 0, r.stderr
    assert "NOT checked" not in r.stderr


def test_a_signing_key_readable_by_others_is_reported(env: Env, tmp_path: Path) -> None:
    key, _ = keygen(tmp_path)
    key.chmod(0o644)
    r = env.run("backup", "postgres", RFBACKUP_SIGNING__KEY_FILE=str(key))
    assert r.returncode == 0, r.stderr
    assert "readable by others" in r.stderr


def test_pitr_refuses_a_base_backup_not_signed_by_a_trusted_key(tmp_path: Path) -> None:
    from pitr_support import archiving_cluster

    key, public = keygen(tmp_path)
    _, other = keygen(tmp_path, "other.key")
    with archiving_cluster() as cluster:
        b = cluster.run("backup", "base", RFBACKUP_SIGNING__KEY_FILE=str(key))
        assert b.returncode == 0, b.stderr
        data_dir = cluster.new_data_dir()
        r = cluster.run(
            "pitr", "--latest", "--data-dir", str(data_dir), RFBACKUP_SIGNING__PUBLIC_KEYS=other
        )
        assert r.returncode == 6, r.stderr
        assert "not trusted" in r.stderr
        assert not data_dir.exists()
        r = cluster.run(
            "pitr", "--latest", "--data-dir", str(data_dir), RFBACKUP_SIGNING__PUBLIC_KEYS=public
        )
        assert r.returncode == 0, r.stderr
        assert (data_dir / "PG_VERSION").exists()
