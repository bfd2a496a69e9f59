"""``rfbackup dr corruption`` end to end: real PostgreSQL, the Kubernetes calls to the fake API
(tests/kube_fake.py). A damaged database comes back from its last good backup, the mode goes
STANDBY then LIVE, every step is in the audit log, and a failed run resumes where it stopped."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import Env, table_checksums
from kube_fake import NS, FakeKube, deployment

CM = f"/api/v1/namespaces/{NS}/configmaps/researchflow-config"


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    fake = FakeKube().start()
    fake.add_configmap({"LOG_LEVEL": "info"})
    yield fake
    fake.stop()


def dr(env: Env, kube: FakeKube, *args: str) -> Any:
    return env.run(
        "dr",
        *args,
        RFBACKUP_MODE__KUBECONFIG=str(kube.kubeconfig(env.cwd)),
        RFBACKUP_MODE__ROLLOUT_TIMEOUT_SECONDS="20",
    )


def audit(env: Env) -> list[dict[str, Any]]:
    folder = env.backups / "dr-audit" / "corruption"
    return [
        json.loads(p.read_text()) for run in sorted(folder.iterdir()) for p in sorted(run.iterdir())
    ]


def damage(env: Env) -> None:
    env.sql("DELETE FROM notes WHERE id % 3 = 0")
    env.sql("UPDATE projects SET name = 'garbage'")


def test_corruption_restores_the_last_good_backup(env: Env, kube: FakeKube) -> None:
    kube.add_deployment(deployment())
    dsn = env.pg.dsn(env.dbname)
    good = table_checksums(dsn)
    r = env.run("backup", "postgres", "--json")
    assert r.returncode == 0, r.stderr
    name = json.loads(r.stdout)["name"]
    damage(env)
    assert table_checksums(dsn) != good

    r = dr(env, kube, "corruption", "--yes")

    assert r.returncode == 0, r.stderr
    assert table_checksums(dsn) == good
    kept = [d for d in env.databases() if d.startswith(f"{env.dbname}_pre_restore_")]
    assert len(kept) == 1  # the damaged database, kept
    cm_patches = [
        (q.content_type, q.body) for q in kube.requests if q.path == CM and q.method == "PATCH"
    ]
    assert cm_patches == [
        ("application/merge-patch+json", {"data": {"ROS_MODE": "STANDBY"}}),
        ("application/json-patch+json", [{"op": "remove", "path": "/data/ROS_MODE"}]),
    ]
    assert kube.configmaps["researchflow-config"]["data"] == {"LOG_LEVEL": "info"}
    events = audit(env)
    assert [(e["step"], e["result"]) for e in events] == [
        ("run", "started"),
        *[
            (s, r)
            for s in ("standby", "identify", "restore", "live", "health")
            for r in ("started", "done")
        ],
        ("run", "finished"),
    ]
    assert all(e["who"] and e["when"] and e["database"] == env.dbname for e in events)
    assert events[4]["facts"]["backup"] == name
    assert "Left for you" in r.stdout


def test_needs_confirmation_naming_env_and_database(env: Env, kube: FakeKube) -> None:
    kube.add_deployment(deployment())
    assert env.run("backup", "postgres").returncode == 0

    r = dr(env, kube, "corruption")

    assert r.returncode == 10
    assert "development" in r.stderr and repr(env.dbname) in r.stderr
    assert kube.requests == [] and not (env.backups / "dr-audit").exists()


def test_dry_run_prints_the_steps_and_does_nothing(env: Env, kube: FakeKube) -> None:
    r = dr(env, kube, "corruption", "--dry-run")

    assert r.returncode == 0, r.stderr
    assert "merge-patch" in r.stdout and "rfbackup restore postgres" in r.stdout
    assert "undo: rfbackup mode live" in r.stdout
    assert kube.requests == [] and not (env.backups / "dr-audit").exists()


def test_a_failed_step_resumes_without_redoing_the_done_ones(env: Env, kube: FakeKube) -> None:
    # The deployment needs ROS_MODE: LIVE (removing it) is refused, after the restore.
    kube.add_deployment(deployment(reads="required-key"))
    dsn = env.pg.dsn(env.dbname)
    good = table_checksums(dsn)
    assert env.run("backup", "postgres").returncode == 0
    damage(env)

    first = dr(env, kube, "corruption", "--yes")

    assert first.returncode == 13
    assert "step 'live' failed" in first.stderr and "--resume" in first.stderr
    assert table_checksums(dsn) == good
    # The operator fixes the deployment (optional key), then resumes.
    kube.add_deployment(deployment(reads="optional-key"))
    kube.requests.clear()

    second = dr(env, kube, "corruption", "--yes", "--resume")

    assert second.returncode == 0, second.stderr
    kept = [d for d in env.databases() if d.startswith(f"{env.dbname}_pre_restore_")]
    assert len(kept) == 1  # restored once
    assert [q.body for q in kube.requests if q.path == CM and q.method == "PATCH"] == [
        [{"op": "remove", "path": "/data/ROS_MODE"}]
    ]
    results = [(e["step"], e["result"]) for e in audit(env)]
    assert ("live", "failed") in results and results[-1] == ("run", "finished")
    assert results.count(("restore", "done")) == 1
