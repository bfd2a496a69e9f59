"""Retention is a pure function: tested by table, then once through the CLI."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta

import pytest
from conftest import Env
from manifest_doc import sidecar

from rfbackup.catalog import Entry
from rfbackup.retention import Policy, plan

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def entry(days_old: float, status: str = "ok", env: str = "development", n: int = 0) -> Entry:
    created = NOW - timedelta(days=days_old)
    name = f"backup_{created:%Y%m%d_%H%M%S}{n or ''}.sql.gz"
    return Entry(name, "postgres", env, created, 100, status)


def deleted(entries: list[Entry], policy: Policy) -> list[float]:
    return sorted(
        round((NOW - d.entry.created_at).total_seconds() / 86400, 1)
        for d in plan(entries, policy, NOW)
        if d.delete
    )


@pytest.mark.parametrize(
    ("ages", "policy", "expected_deleted"),
    [
        # Backups stopped a month ago: the newest 3 good ones survive anyway.
        ([40, 41, 42, 43, 44], Policy(30, 3), [43, 44]),
        ([1, 2, 31, 32], Policy(30, 3), [32]),
        ([1, 2, 3, 31, 32], Policy(30, 3), [31, 32]),
        ([5, 10, 35], Policy(30, 0), [35]),
        ([5, 10, 35], Policy(3, 5), []),
        ([], Policy(30, 3), []),
        ([31], Policy(30, 1), []),
        ([0.5, 29.9, 30.1], Policy(30, 1), [30.1]),
    ],
)
def test_keep_days_and_keep_min(
    ages: list[float], policy: Policy, expected_deleted: list[float]
) -> None:
    assert deleted([entry(a) for a in ages], policy) == expected_deleted


def test_damaged_backups_do_not_count_toward_keep_min() -> None:
    entries = [entry(40, "damaged"), entry(41, "missing-data"), entry(42), entry(43), entry(50)]
    policy = Policy(30, 2, delete_damaged=True)  # without it, damaged entries stay
    decisions = {d.entry.name: d for d in plan(entries, policy, NOW)}
    assert [d.delete for d in decisions.values()] == [True, True, False, False, True]
    assert "damaged entry older than 30 days" in decisions[entries[0].name].reason


def test_writes_in_progress_and_abandoned_are_never_pruned() -> None:
    entries = [entry(100, "in-progress"), entry(100, "abandoned", n=1), entry(1)]
    assert deleted(entries, Policy(0, 0)) == [1.0]


def test_unmanaged_files_only_with_include_unmanaged() -> None:
    entries = [entry(100, "no-manifest"), entry(1)]
    assert deleted(entries, Policy(30, 0)) == []
    assert deleted(entries, Policy(30, 0, include_unmanaged=True)) == [100.0]


def test_environments_are_kept_separately() -> None:
    entries = [entry(40, env="production"), entry(41), entry(42), entry(43)]
    decisions = plan(entries, Policy(30, 1), NOW)
    kept = {(d.entry.environment, d.entry.created_at) for d in decisions if not d.delete}
    assert kept == {("production", entries[0].created_at), ("development", entries[1].created_at)}


def test_every_decision_has_a_reason() -> None:
    for d in plan([entry(a) for a in (1, 20, 40, 60)], Policy(30, 1), NOW):
        assert d.reason


def _age(env: Env, name: str, days: int) -> str:
    """Rename a real backup (and its sidecars) as if it had been taken ``days`` ago."""
    manifest = json.loads((env.backups / f"{name}.manifest.json").read_text())
    when = datetime.now(UTC) - timedelta(days=days)
    new = f"backup_{when:%Y%m%d_%H%M%S}.sql.gz"
    stem_old, stem_new = name[: -len(".sql.gz")], new[: -len(".sql.gz")]
    manifest.update(name=new, started_at=when.isoformat())
    manifest["data"]["key"] = new
    roles_old = sidecar(manifest, "roles")["key"]
    sidecar(manifest, "roles")["key"] = roles_old.replace(stem_old, stem_new)
    (env.backups / name).rename(env.backups / new)
    (env.backups / roles_old).rename(env.backups / sidecar(manifest, "roles")["key"])
    (env.backups / f"{name}.manifest.json").unlink()
    (env.backups / f"{new}.manifest.json").write_text(json.dumps(manifest))
    return new


def test_prune_through_the_cli(env: Env) -> None:
    names = []
    for days in (45, 40, 35, 2):
        r = env.run("backup", "postgres")
        assert r.returncode == 0, r.stderr
        names.append(_age(env, r.stdout.strip(), days))
    foreign = env.backups / "backup_20200101_000000.sql.gz"
    foreign.write_bytes(b"made by the old scripts")
    os.utime(foreign, (0, 0))
    files_before = env.data_files()

    dry = env.run("prune", "--keep-min", "2", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    plan_doc = json.loads(dry.stdout)
    assert plan_doc["dry_run"] is True
    to_delete = sorted(d["name"] for d in plan_doc["decisions"] if d["action"] == "delete")
    assert to_delete == sorted(names[:2])
    assert env.data_files() == files_before  # a dry run deletes nothing

    r = env.run("prune", "--keep-min", "2")
    assert r.returncode == 0, r.stderr
    remaining = env.data_files()
    for gone in names[:2]:
        assert not any(f.startswith(gone[: -len(".sql.gz")]) for f in remaining)
    for kept in names[2:]:
        assert kept in remaining and f"{kept}.manifest.json" in remaining
    assert foreign.name in remaining  # never touched without --include-unmanaged

    r = env.run("prune", "--include-unmanaged")
    assert r.returncode == 0, r.stderr
    assert foreign.name not in env.data_files()
