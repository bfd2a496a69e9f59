"""The retention each key gets, and the [object_lock] settings (no servers needed)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from test_config_errors import one_error_line, run

from rfbackup import config
from rfbackup.immutability import pick
from rfbackup.storage import ObjectInfo
from rfbackup.storage.objectlock import LockPolicy, component_of, lock_policy

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_each_component_gets_its_keep_days_plus_the_margin() -> None:
    policy = lock_policy(
        "compliance", timedelta(days=2), {"postgres": 30, "base": 14, "wal": 14}, {}, False
    ).retention()
    assert policy.mode == "COMPLIANCE"
    cases = {
        "postgres/20260101_000000.sql.gz": 32,
        "postgres/20260101_000000.sql.gz.manifest.json": 32,
        "base/20260101T000000Z.tar.zst": 16,
        "wal/0000000100000000/000000010000000000000001-abc.zst": 16,
        "redis/20260101_000000.rdb.zst": 9,  # the runbook's 7 days
        "artifacts/packs/ab/cd": 92,  # 90 days
        "drills/2026-01.json": 92,  # unknown component: the longest of all
    }
    for key, days in cases.items():
        r = policy.for_key(key, NOW)
        assert r is not None and r.until == NOW + timedelta(days=days), key
    assert policy.for_key("locks/postgres.json", NOW) is None  # leases are never locked


def test_configured_days_override_the_defaults() -> None:
    policy = lock_policy("governance", timedelta(0), {"postgres": 30}, {"redis": 3}, False)
    r = policy.retention()
    assert r.mode == "GOVERNANCE" and r.days_for("redis/x") == 3


@pytest.mark.parametrize(
    ("mode", "production", "effective"),
    [
        (None, True, "governance"),
        (None, False, "off"),
        ("compliance", False, "compliance"),
        ("off", True, "off"),
    ],
)
def test_mode_defaults_to_governance_only_in_production(
    mode: str | None, production: bool, effective: str
) -> None:
    assert LockPolicy(mode, {}, timedelta(0), production).effective_mode == effective  # type: ignore[arg-type]


def test_component_is_the_first_folder() -> None:
    assert component_of("postgres/x") == "postgres"
    assert component_of("backup_20250101_000000.sql.gz") == ""


def test_sample_takes_the_newest_of_each_component_then_random_ones() -> None:
    objs = [
        ObjectInfo(f"{c}/{i}", 1, NOW + timedelta(minutes=i))
        for c in ("postgres", "wal")
        for i in range(50)
    ]
    chosen = pick(objs, 5, random.Random(1))
    assert len(chosen) == 5 and len({o.key for o in chosen}) == 5
    assert {"postgres/49", "wal/49"} <= {o.key for o in chosen}
    assert pick(objs, 0, random.Random(1)) == objs


def test_settings_read_the_object_lock_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "rfbackup.toml").write_text(
        '[object_lock]\nmode = "compliance"\nmargin = "P3D"\nkeep_days = { redis = 5 }\n'
    )
    monkeypatch.setenv("RFBACKUP_CONFIG", str(tmp_path / "rfbackup.toml"))
    monkeypatch.setenv("RFBACKUP_POSTGRES__KEEP_DAYS", "10")
    s = config.load()
    r = s.lock_policy().retention()
    assert r.mode == "COMPLIANCE" and r.margin == timedelta(days=3)
    assert (r.days_for("postgres/x"), r.days_for("redis/x"), r.days_for("wal/x")) == (10, 5, 14)


def test_a_bad_mode_or_margin_is_one_line_and_exit_3(tmp_path: Path) -> None:
    one_error_line(run(tmp_path, "check", RFBACKUP_OBJECT_LOCK__MODE="worm"), 3, "object_lock.mode")
    one_error_line(
        run(tmp_path, "check", RFBACKUP_OBJECT_LOCK__MARGIN="a week"), 3, "object_lock.margin"
    )
    one_error_line(
        run(tmp_path, "check", RFBACKUP_OBJECT_LOCK__MOD="compliance"),
        3,
        "RFBACKUP_OBJECT_LOCK__MODE",
    )
