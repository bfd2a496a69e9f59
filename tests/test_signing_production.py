"""Production trusts no backup by default: without a configured public key, a restore is
refused (signing.required unset); `signing.required = false` turns that into a warning."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pyrage
import pytest
from test_engine_source import FileSource, restored
from test_engine_source import setup as engine_setup  # noqa: F401  (a fixture)

from rfbackup import config, signing
from rfbackup.engine import job
from rfbackup.errors import IntegrityError


@pytest.fixture
def production(
    engine_setup: tuple[config.Settings, Path],  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[str, Path]]:
    _, data = engine_setup
    identity = pyrage.x25519.Identity.generate()
    (tmp_path / "age.key").write_text(str(identity))
    monkeypatch.setenv("RFBACKUP_ENV", "production")
    monkeypatch.setenv("RFBACKUP_ENCRYPTION__RECIPIENTS", str(identity.to_public()))
    monkeypatch.setenv("RFBACKUP_ENCRYPTION__IDENTITY_FILE", str(tmp_path / "age.key"))
    signing.generate(tmp_path / "signing.key")
    monkeypatch.setenv("RFBACKUP_SIGNING__KEY_FILE", str(tmp_path / "signing.key"))
    name = job.run(config.load(), FileSource(data)).manifest.name
    yield name, data


def test_production_refuses_without_a_trusted_key(
    production: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    name, data = production
    with pytest.raises(IntegrityError, match="required in production"):
        restored(config.load(), name)
    assert restored(config.load(), name, allow_unverified=True) == data.read_bytes()
    monkeypatch.setenv("RFBACKUP_SIGNING__REQUIRED", "false")
    assert restored(config.load(), name) == data.read_bytes()


def test_production_restores_what_its_trusted_key_signed(
    production: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, data = production
    monkeypatch.setenv("RFBACKUP_SIGNING__PUBLIC_KEYS_FILE", str(tmp_path / "signing.key.pub"))
    assert restored(config.load(), name) == data.read_bytes()


def test_a_key_shared_only_with_our_own_group_is_not_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key = tmp_path / "k"
    key.write_text("x")
    os.chmod(key, 0o640)  # a Secret volume with fsGroup: group-readable, our group
    os.chown(key, -1, os.getgid())
    signing.warn_if_shared(key, "signing key")
    assert "readable by others" not in caplog.text
    os.chown(key, -1, os.getgid() + 4242)  # another group may read it: a secret no longer
    signing.warn_if_shared(key, "signing key")
    assert "readable by others" in caplog.text
