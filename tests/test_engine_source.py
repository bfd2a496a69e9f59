"""A tiny source defined here, in the test, gets every guarantee of the engine without any
change to it: backup, list, restore, prune, replica, signatures and encryption.

It backs up one file's bytes, with a sidecar, into a real SeaweedFS bucket and its replica.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Generator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyrage
import pytest
from conftest import new_bucket

from rfbackup import catalog, config, replication, signing
from rfbackup.engine import fetch, job
from rfbackup.engine.registry import Keep, register_retention
from rfbackup.engine.source import Keys, Sidecar, SourceBase
from rfbackup.errors import IntegrityError, SourceError
from rfbackup.prune import prune
from rfbackup.sandbox.seaweedfs import ThrowawayS3

register_retention("testfile", lambda s: Keep(days=7, min=1))


class FileSource(SourceBase):
    component = "testfile"
    sidecar_suffixes: tuple[str, ...] = (".meta.json",)

    def __init__(self, path: Path, fail_after: int | None = None) -> None:
        self.path = path
        self.fail_after = fail_after
        self.size = 0

    def subject(self) -> str:
        return self.path.name

    def describe(self) -> str:
        return str(self.path)

    def keys(self, at: datetime, encrypted: bool, layout: str) -> Keys:
        return Keys(f"testfile/{at:%Y%m%d_%H%M%S}", ".bin.zst", encrypted)

    def owns(self, key: str) -> bool:
        return key.startswith("testfile/")

    def stream(self) -> Generator[bytes]:
        self.size = 0
        with self.path.open("rb") as fh:
            while chunk := fh.read(64 * 1024):
                if self.fail_after is not None and self.size >= self.fail_after:
                    raise SourceError("the test source broke half way")
                self.size += len(chunk)
                yield chunk

    def sidecars(self) -> list[Sidecar]:
        return [Sidecar("meta", ".meta.json", json.dumps({"name": self.path.name}).encode())]

    def section(self) -> dict[str, Any]:
        return {"bytes": self.size}


@pytest.fixture
def setup(
    s3: ThrowawayS3, s3_replica: ThrowawayS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[config.Settings, Path]]:
    primary, replica = new_bucket(s3), new_bucket(s3_replica)
    for k, v in s3.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("RFBACKUP_REPOSITORY", f"s3://{primary}/rf")
    monkeypatch.setenv("RFBACKUP_REPLICA__URL", f"s3://{replica}/dr")
    monkeypatch.setenv("RFBACKUP_REPLICA__ENDPOINT_URL", s3_replica.endpoint)
    monkeypatch.setenv("RFBACKUP_REPLICA__ACCESS_KEY_ID", s3_replica.access_key)
    monkeypatch.setenv("RFBACKUP_REPLICA__SECRET_ACCESS_KEY", s3_replica.secret_key)
    monkeypatch.setenv("RFBACKUP_LOCKS__DIR", str(tmp_path / "locks"))
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "payload.bin"
    data.write_bytes(os.urandom(200_000) + b"tail" * 50_000)
    yield config.load(), data


def restored(s: config.Settings, name: str, **kw: Any) -> bytes:
    loc, _, identities = fetch.open_verified(s, name, component="testfile", **kw)
    with loc.repo.open(loc.key) as raw, fetch.plaintext(loc, raw, identities) as clear:
        return clear.read()


def test_backup_list_restore_replica_and_prune(
    setup: tuple[config.Settings, Path], s3_replica: ThrowawayS3
) -> None:
    s, data = setup
    replica_server = s3_replica
    result = job.run(s, FileSource(data))
    m = result.manifest
    assert (m.component, m.subject, m.source) == ("testfile", "payload.bin", {"bytes": 400_000})
    assert m.sidecar("meta")["captured"] and result.replicated_to == s.replica.url
    assert result.report is not None and result.report.outcome == "success"

    primary, replica = s.open_repository(), s.open_replica()
    assert replica is not None
    (entry,) = [e for e in catalog.scan(primary) if e.component == "testfile"]
    assert entry.good and entry.name == m.name
    assert entry.object_keys() == [m.name, m.sidecar("meta")["key"], m.name + ".manifest.json"]
    assert restored(s, m.name) == data.read_bytes()
    assert replication.compare(primary, replica).ok
    with pytest.MonkeyPatch.context() as mp:  # the region is gone: only the replica is left
        for k, v in replica_server.env().items():
            mp.setenv(k, v)
        mp.setenv("RFBACKUP_REPOSITORY", str(s.replica.url))
        mp.delenv("RFBACKUP_REPLICA__URL")
        assert restored(config.load(), m.name) == data.read_bytes()

    second = job.run(s, FileSource(data)).manifest  # a new key, never an overwrite
    assert second.name != m.name
    later = datetime.now(UTC) + timedelta(days=30)
    done = prune(
        s,
        keep_days=None,
        keep_min=None,
        dry_run=False,
        include_unmanaged=False,
        now=later,
        components=["testfile"],
    )
    deleted = sorted({d.entry.name for _, d in done if d.delete})
    assert deleted == [m.name]  # keep-min 1: the newer one stays, on both sides
    for repo in (primary, replica):
        names = [e.name for e in catalog.scan(repo) if e.component == "testfile"]
        assert names == [second.name]
        assert not list(repo.list(m.name.removesuffix(".bin.zst")))


def test_a_tampered_object_is_refused(setup: tuple[config.Settings, Path]) -> None:
    s, data = setup
    m = job.run(s, FileSource(data)).manifest
    primary = s.open_repository()
    sidecar = m.sidecar("meta")["key"]
    original = primary.open(sidecar).read()
    primary.delete([sidecar])
    primary.put(sidecar, original.replace(b"payload", b"evilload"))
    with pytest.raises(IntegrityError, match="corrupted"):
        restored(s, m.name)
    primary.delete([sidecar])
    primary.put(sidecar, original)
    body = primary.open(m.name).read()
    primary.delete([m.name])
    primary.put(m.name, body[:-1] + bytes([body[-1] ^ 1]))
    with pytest.raises(IntegrityError, match="sha256"):
        restored(s, m.name)


def test_a_failed_stream_leaves_nothing(setup: tuple[config.Settings, Path]) -> None:
    s, data = setup
    with pytest.raises(SourceError):
        job.run(s, FileSource(data, fail_after=100_000))
    primary, replica = s.open_repository(), s.open_replica()
    assert replica is not None
    for repo in (primary, replica):
        assert list(repo.list("testfile/", include_partial=True)) == []


def test_encrypted_and_signed(
    setup: tuple[config.Settings, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, data = setup
    identity = pyrage.x25519.Identity.generate()
    (tmp_path / "age.key").write_text(str(identity))
    pub_file, public = signing.generate(tmp_path / "signing.key")
    monkeypatch.setenv("RFBACKUP_ENCRYPTION__RECIPIENTS", str(identity.to_public()))
    monkeypatch.setenv("RFBACKUP_ENCRYPTION__IDENTITY_FILE", str(tmp_path / "age.key"))
    monkeypatch.setenv("RFBACKUP_SIGNING__KEY_FILE", str(tmp_path / "signing.key"))
    monkeypatch.setenv("RFBACKUP_SIGNING__PUBLIC_KEYS", public)
    s = config.load()
    m = job.run(s, FileSource(data)).manifest
    assert m.name.endswith(".bin.zst.age") and m.encryption["format"] == "age"
    assert m.signature
    primary = s.open_repository()
    stored = primary.open(m.name).read()
    assert stored.startswith(b"age-encryption.org/v1") and b"tail" * 8 not in stored
    meta = primary.open(m.sidecar("meta")["key"]).read()
    assert b"payload" not in meta
    assert restored(s, m.name) == data.read_bytes()

    doc = json.loads(primary.open(m.name + ".manifest.json").read())
    doc["source"]["bytes"] = 1  # an edit the signature no longer covers
    primary.delete([m.name + ".manifest.json"])
    primary.put(m.name + ".manifest.json", json.dumps(doc).encode())
    with pytest.raises(IntegrityError, match="signature"):
        restored(s, m.name)
    assert hashlib.sha256(pub_file.read_bytes()).hexdigest()  # the public file was written


def test_format_1_manifests_still_read() -> None:
    from rfbackup.manifest import Manifest

    v1 = {
        "format": "rfbackup-manifest/1",
        "name": "backup_20250120_143000.sql.gz",
        "component": "postgres",
        "environment": "production",
        "tool_version": "0.1.0",
        "started_at": "2025-01-20T14:30:00+00:00",
        "finished_at": "2025-01-20T14:31:00+00:00",
        "duration_seconds": 60.0,
        "compression": "gzip",
        "compression_level": 4,
        "data": {"key": "k", "sha256": "ab" * 32, "stored_bytes": 5, "raw_bytes": 50},
        "database": {"name": "app"},
        "dump": {"format": "plain"},
        "row_counts": {"public.t": 3},
        "checks": {},
        "roles": {"captured": True, "key": "r.roles.gz", "sha256": "cd" * 32},
        "db_properties": {},
        "physical": {},
        "encryption": {},
        "status": "done",
    }
    raw = json.dumps(v1).encode()
    m = Manifest.from_json(raw, "old.json")
    assert m.database == {"name": "app"} and m.row_counts == {"public.t": 3}
    assert m.roles["key"] == "r.roles.gz" and m.db_properties == {}
    assert m.sidecar_keys() == ["r.roles.gz"] and m.physical == {}
    assert json.loads(m.signed_bytes()) == v1  # a signature covers the document as read
