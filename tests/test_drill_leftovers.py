"""What a drill killed with SIGKILL leaves (it cannot clean up then) is found and dropped by
`rfbackup prune-databases`, like a killed restore's work database."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from conftest import Env

from rfbackup.prune_databases import plan


def test_plan_knows_drill_scratch_databases() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    found = {
        "rfbackup_drill_20261101_060000": 0,
        "rfbackup_drill_20261101_060000_restore_20261101_060001": 0,
        "rfbackup_drill_20261130_060000": 0,  # too recent
        "rfbackup_drill_notes": 0,  # not ours: no stamp
        "rfbackup_drill_20261101_060000x": 0,
    }
    decided = {d.name: (d.kind, d.drop) for d in plan(found, 7, now)}
    assert decided == {
        "rfbackup_drill_20261101_060000": ("drill", True),
        "rfbackup_drill_20261101_060000_restore_20261101_060001": ("abandoned", True),
        "rfbackup_drill_20261130_060000": ("drill", False),
    }


def test_prune_databases_drops_a_killed_drills_database(env: Env) -> None:
    env.sql("CREATE DATABASE rfbackup_drill_20200101_060000", "postgres")
    r = env.run("prune-databases", "--keep-days", "1", "--yes", "--json")
    assert r.returncode == 0, r.stderr
    (mine,) = [
        d
        for d in json.loads(r.stdout)["databases"]
        if d["database"].startswith("rfbackup_drill_2020")
    ]
    assert mine["kind"] == "drill" and mine["action"] == "drop"
    assert "rfbackup_drill_20200101_060000" not in env.databases()
