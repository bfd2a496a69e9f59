"""``rfbackup mode standby|live`` against a fake Kubernetes API (tests/kube_fake.py): the
exact requests the runbook's kubectl commands make, valid objects after every patch, the
rollout waited for, the new pods checked, and the token never printed. Docker Compose: the
env file rewritten for real, the `docker compose` argv as planned."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kube_fake import NS, FakeKube, deployment

RFBACKUP = [sys.executable, "-m", "rfbackup"]
CM = f"/api/v1/namespaces/{NS}/configmaps/researchflow-config"
DEP = f"/apis/apps/v1/namespaces/{NS}/deployments/orchestrator"
PODS = f"/api/v1/namespaces/{NS}/pods"


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    fake = FakeKube().start()
    yield fake
    fake.stop()


def run(tmp: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "RFBACKUP_", "KUBE"))}
    base["RFBACKUP_CONFIG"] = str(tmp / "rfbackup.toml")
    return subprocess.run(
        [*RFBACKUP, *args],
        cwd=tmp,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def mode(kube: FakeKube, tmp: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    settings = {
        "RFBACKUP_MODE__KUBECONFIG": str(kube.kubeconfig(tmp)),
        "RFBACKUP_MODE__ROLLOUT_TIMEOUT_SECONDS": "20",
        **env,
    }
    return run(tmp, "mode", *args, **settings)


def without_reads(kube: FakeKube) -> list[tuple[str, str]]:
    """The calls, with repeated rollout polls collapsed to one."""
    out: list[tuple[str, str]] = []
    for call in kube.calls():
        if not (out and out[-1] == call and call[0] == "GET"):
            out.append(call)
    return out


def test_standby_is_a_merge_patch_then_a_restart(kube: FakeKube, tmp_path: Path) -> None:
    kube.add_configmap({"LOG_LEVEL": "info"})
    kube.add_deployment(deployment())

    r = mode(kube, tmp_path, "standby", "--json")

    assert r.returncode == 0, r.stderr
    assert without_reads(kube) == [
        ("GET", DEP),  # precondition: the deployment reads the ConfigMap
        ("GET", CM),
        ("PATCH", CM),
        ("PATCH", DEP),
        ("GET", DEP),  # waiting for the rollout
        ("GET", PODS),
    ]
    patch_cm, patch_dep = [q for q in kube.requests if q.method == "PATCH"]
    assert patch_cm.content_type == "application/merge-patch+json"
    assert patch_cm.body == {"data": {"ROS_MODE": "STANDBY"}}
    assert patch_dep.content_type == "application/strategic-merge-patch+json"
    stamp = patch_dep.body["spec"]["template"]["metadata"]["annotations"][
        "kubectl.kubernetes.io/restartedAt"
    ]
    assert patch_dep.body == {
        "spec": {
            "template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": stamp}}}
        }
    }
    pods = [q for q in kube.requests if q.path == PODS]
    assert pods[0].query == {"labelSelector": ["app=orchestrator"]}
    assert kube.configmaps["researchflow-config"]["data"] == {
        "LOG_LEVEL": "info",
        "ROS_MODE": "STANDBY",
    }
    assert all(
        p["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"] == stamp
        for p in kube.pods.values()
    )
    doc: dict[str, Any] = json.loads(r.stdout)
    assert doc["mode"] == "STANDBY" and all(s["done"] for s in doc["steps"])
    # The token authenticated every request, and appears nowhere we print or log.
    assert {q.authorization for q in kube.requests} == {f"Bearer {kube.token}"}
    logs = tmp_path / "logs" / "backup.log"
    for text in (r.stdout, r.stderr, logs.read_text() if logs.exists() else ""):
        assert kube.token not in text


def test_live_is_a_json_patch_remove(kube: FakeKube, tmp_path: Path) -> None:
    kube.add_configmap({"ROS_MODE": "STANDBY", "LOG_LEVEL": "info"})
    kube.add_deployment(deployment(reads="optional-key"))

    r = mode(kube, tmp_path, "live")

    assert r.returncode == 0, r.stderr
    (patch_cm,) = [q for q in kube.requests if q.method == "PATCH" and q.path == CM]
    assert patch_cm.content_type == "application/json-patch+json"
    assert patch_cm.body == [{"op": "remove", "path": "/data/ROS_MODE"}]
    assert kube.configmaps["researchflow-config"]["data"] == {"LOG_LEVEL": "info"}
    assert "is now LIVE" in r.stdout
    # Again: the key is already gone, so no remove (it would fail); the restart still runs.
    kube.requests.clear()
    assert mode(kube, tmp_path, "live").returncode == 0
    assert [q.path for q in kube.requests if q.method == "PATCH"] == [DEP]


def test_a_rollout_that_never_finishes_fails_after_the_timeout(
    kube: FakeKube, tmp_path: Path
) -> None:
    kube.rollout_polls = None
    kube.add_configmap({})
    kube.add_deployment(deployment())

    r = mode(kube, tmp_path, "standby", RFBACKUP_MODE__ROLLOUT_TIMEOUT_SECONDS="2")

    assert r.returncode == 13
    assert "deployment/orchestrator did not roll out within 2 s" in r.stderr
    assert r.stderr.strip().splitlines()[-1].endswith("(1 of 2 updated, 2 available)")


@pytest.mark.parametrize(
    ("reads", "target", "message"),
    [
        ("none", "standby", "does not read ROS_MODE from configmap researchflow-config"),
        ("required-key", "live", "removing the key would stop its pods from starting"),
    ],
)
def test_refuses_before_changing_anything(
    kube: FakeKube, tmp_path: Path, reads: str, target: str, message: str
) -> None:
    kube.add_configmap({"ROS_MODE": "STANDBY"})
    kube.add_deployment(deployment(reads=reads))

    r = mode(kube, tmp_path, target)

    assert r.returncode == 13 and message in r.stderr
    assert [q for q in kube.requests if q.method == "PATCH"] == []


def test_dry_run_prints_the_calls_and_sends_nothing(kube: FakeKube, tmp_path: Path) -> None:
    r = mode(kube, tmp_path, "standby", "--dry-run")

    assert r.returncode == 0, r.stderr
    assert kube.requests == []
    assert f"PATCH {CM} (application/merge-patch+json)" in r.stdout
    assert f"PATCH {DEP} (application/strategic-merge-patch+json)" in r.stdout


def test_wrong_token_is_one_line_without_the_token(kube: FakeKube, tmp_path: Path) -> None:
    kube.add_configmap({})
    kube.add_deployment(deployment())
    config = kube.kubeconfig(tmp_path)
    config.write_text(config.read_text().replace(kube.token, "wrong-token-123"))

    r = run(tmp_path, "mode", "standby", RFBACKUP_MODE__KUBECONFIG=str(config))

    assert r.returncode == 13 and "401" in r.stderr
    assert "wrong-token-123" not in r.stderr + r.stdout


# -- Docker Compose --------------------------------------------------------------------------


def compose_env(tmp: Path) -> dict[str, str]:
    return {
        "RFBACKUP_MODE__PLATFORM": "compose",
        "RFBACKUP_MODE__COMPOSE_ENV_FILE": str(tmp / "app.env"),
        "RFBACKUP_MODE__COMPOSE_FILE": str(tmp / "docker-compose.yml"),
        "RFBACKUP_MODE__COMPOSE_SERVICES": '["orchestrator", "worker"]',
    }


def test_compose_plans_the_exact_command(tmp_path: Path) -> None:
    r = run(tmp_path, "mode", "standby", "--dry-run", "--json", **compose_env(tmp_path))

    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["command"][1:] == [
        "compose",
        "-f",
        str(tmp_path / "docker-compose.yml"),
        "--env-file",
        str(tmp_path / "app.env"),
        "up",
        "-d",
        "--force-recreate",
        "--no-deps",
        "orchestrator",
        "worker",
    ]


def test_compose_env_file_rewrite(tmp_path: Path) -> None:
    from rfbackup.dr.compose import set_mode

    env_file = tmp_path / "app.env"
    env_file.write_text("# app\nDB_HOST=db\nexport ROS_MODE=LIVE\nROS_MODE_X=1\n")
    env_file.chmod(0o640)

    assert set_mode(env_file, "ROS_MODE", "STANDBY") is True
    assert env_file.read_text() == "# app\nDB_HOST=db\nROS_MODE_X=1\nROS_MODE=STANDBY\n"
    assert env_file.stat().st_mode & 0o777 == 0o640
    assert set_mode(env_file, "ROS_MODE", "STANDBY") is False  # already so: untouched
    assert set_mode(env_file, "ROS_MODE", None) is True
    assert env_file.read_text() == "# app\nDB_HOST=db\nROS_MODE_X=1\n"
    assert [p.name for p in tmp_path.iterdir()] == ["app.env"]  # no temporary file left


def test_compose_without_docker_fails_after_rewriting(tmp_path: Path) -> None:
    (tmp_path / "app.env").write_text("A=1\n")
    r = run(tmp_path, "mode", "standby", PATH="/nonexistent", **compose_env(tmp_path))
    assert r.returncode == 13 and "docker is not installed" in r.stderr
    assert (tmp_path / "app.env").read_text() == "A=1\nROS_MODE=STANDBY\n"
