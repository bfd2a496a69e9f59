"""Configuration precedence and the runbook's file names."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from rfbackup import config
from rfbackup.config import Environment
from rfbackup.errors import ConfigError
from rfbackup.naming import BackupName


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    import os

    for key in list(os.environ):
        if key.startswith(("PG", "RFBACKUP_")) or key == "DATABASE_URL":
            monkeypatch.delenv(key)
    monkeypatch.setenv("RFBACKUP_CONFIG", str(tmp_path / "rfbackup.toml"))
    return tmp_path / "rfbackup.toml"


def test_defaults(clean_env: Path) -> None:
    s = config.load()
    assert s.env is Environment.development
    assert s.primary_repository == "backups"
    assert (s.postgres.keep_days, s.postgres.keep_min) == (30, 3)


def test_precedence_cli_over_env_over_toml(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean_env.write_text('env = "staging"\nbackup_dir = "/srv/b"\n[postgres]\nkeep_days = 9\n')
    s = config.load()
    assert (s.env, s.primary_repository, s.postgres.keep_days) == (Environment.staging, "/srv/b", 9)
    monkeypatch.setenv("RFBACKUP_ENV", "production")
    monkeypatch.setenv("RFBACKUP_POSTGRES__KEEP_DAYS", "12")
    s = config.load()
    assert (s.env, s.postgres.keep_days) == (Environment.production, 12)
    assert config.load(env="development").env is Environment.development


def test_database_url_is_parsed_and_secret_stays_secret(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p%40ss@db.internal:6543/rf?sslmode=require")
    t = config.load().postgres_target()
    assert (t.host, t.port, t.user, t.dbname) == ("db.internal", 6543, "u", "rf")
    assert "p@ss" not in repr(t) and "p@ss" not in t.display
    env = t.child_env({})
    assert env["PGPASSWORD"] == "p@ss" and env["PGSSLMODE"] == "require"


def test_bad_configuration_is_a_config_error(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RFBACKUP_ENV", "qa")
    with pytest.raises(ConfigError, match="env"):
        config.load()
    monkeypatch.delenv("RFBACKUP_ENV")
    clean_env.write_text("env = [unclosed")
    with pytest.raises(ConfigError):
        config.load()


def test_runbook_names() -> None:
    at = datetime(2025, 1, 20, 14, 30, 0, 123, tzinfo=UTC)
    dev = BackupName.new(Environment.development, "plain", "gzip", at)
    assert dev.key == "backup_20250120_143000.sql.gz"
    assert dev.manifest_key == "backup_20250120_143000.sql.gz.manifest.json"
    assert dev.roles_key == "backup_20250120_143000.roles.gz"
    prod = BackupName.new(Environment.production, "custom", "zstd", at)
    assert prod.key == "backup_prod_20250120_143000.dump.zst"
    assert BackupName.parse(prod.key) == prod
    assert BackupName.parse("backups/backup_20250120_143000.sql.gz") == dev
    for other in (
        "backup_2025_1.sql.gz",
        "notes.txt",
        "backup_20250120_143000.sql.gz.manifest.json",
    ):
        assert BackupName.parse(other) is None
