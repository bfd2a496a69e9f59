"""rediss://: the snapshot over TLS (raw replication socket) and the replay into a TLS target,
with the CA from REDIS_TLS_CA_FILE; a server certificate the CA does not vouch for fails."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis_support import assert_same, backup_to, contents, fill

from rfbackup.config import Settings
from rfbackup.errors import SourceError
from rfbackup.sandbox.redis import ThrowawayRedis
from rfbackup.sources.redis import RedisSource
from rfbackup.sources.redis.remote import restore_remote


def settings(monkeypatch: pytest.MonkeyPatch, url: str, ca: Path | None) -> Settings:
    monkeypatch.setenv("REDIS_URL", url)
    if ca is not None:
        monkeypatch.setenv("REDIS_TLS_CA_FILE", str(ca))
    else:
        monkeypatch.delenv("REDIS_TLS_CA_FILE", raising=False)
    monkeypatch.setenv("RFBACKUP_CONFIG", "/nonexistent/rfbackup.toml")
    return Settings()


def test_snapshot_and_remote_restore_over_tls(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with (
        ThrowawayRedis(password="tls-pw", tls=True) as src,
        ThrowawayRedis(password="tls-pw2", tls=True) as dest,
    ):
        fill(src, dbs=range(2), per_db=5)
        source = settings(monkeypatch, src.url(), src.cert).redis_target()
        assert source.tls
        s = RedisSource(source)
        snap = backup_to(s, tmp_path / "snap.rdb")
        assert s.manifest_section()["method"] == "sync"
        target = settings(monkeypatch, dest.url(), dest.cert).redis_target()
        with open(snap, "rb") as fh:
            restore_remote(fh, target)
        assert_same(contents(src, range(2)), contents(dest, range(2)))
        # Without the CA file the self-signed certificate is not trusted: one line, no data.
        untrusted = settings(monkeypatch, src.url(), None).redis_target()
        with pytest.raises(SourceError) as err:
            backup_to(RedisSource(untrusted), tmp_path / "other.rdb")
        assert "certificate verify failed" in str(err.value) and "\n" not in str(err.value)
        assert not (tmp_path / "other.rdb").exists()
