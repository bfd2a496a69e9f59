"""Kubernetes manifests, validated offline: `kubectl kustomize` builds every overlay,
`kubernetes-validate --strict` accepts them for Kubernetes 1.29 to 1.33, our own policy
checks what schemas cannot, and the PrometheusRule is exactly the alert rules file."""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import RFBACKUP
from croniter import croniter

from rfbackup.ops import k8s

ROOT = Path(__file__).resolve().parent.parent
KUBE = ROOT / "deploy" / "kubernetes"
TARGETS = ("base", "overlays/staging", "overlays/production")
VERSIONS = ("1.29.0", "1.30.0", "1.31.0", "1.32.0", "1.33.0")
VALIDATE = Path(sys.executable).with_name("kubernetes-validate")
SECRETS = {
    "postgres-credentials",
    "redis-credentials",
    "backup-s3-credentials",
    "backup-s3-replica-credentials",
}
# commands a CronJob may call: every one exists today (the test below checks)
EXPECTED = {
    "postgres-backup": ("0 2 * * *", ["backup", "postgres"]),
    "redis-backup": ("0 * * * *", ["backup", "redis"]),
    "postgres-base-backup": ("0 1 * * 0", ["backup", "base"]),
    "backup-retention": ("0 4 * * 0", ["prune"]),
    "pitr-retention": ("30 4 * * 0", ["pitr", "prune"]),
    "backup-drill": ("0 6 1 * *", ["drill", "--component", "postgres"]),
    "artifacts-backup": ("30 1 * * *", ["backup", "artifacts"]),
}
PRODUCTION_ONLY = {"backup-replica-check": ("30 3 * * *", ["replica", "check"])}


def expected(target: str) -> dict[str, tuple[str, list[str]]]:
    return {**EXPECTED, **(PRODUCTION_ONLY if target.endswith("production") else {})}


needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl missing")


def build(target: str) -> list[dict[str, Any]]:
    return k8s.kustomize(KUBE / target)


@pytest.fixture(scope="module")
def built() -> dict[str, list[dict[str, Any]]]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl missing")
    return {t: build(t) for t in TARGETS}


def cronjobs(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == "CronJob"]


def interval_seconds(schedule: str) -> float:
    """The shortest gap between two runs of ``schedule`` over the next 60 runs."""
    it = croniter(schedule, datetime(2026, 1, 1, tzinfo=UTC))
    times = [it.get_next(datetime) for _ in range(60)]
    return min((b - a).total_seconds() for a, b in pairwise(times))


def policy(job: dict[str, Any]) -> list[str]:
    """What our CronJobs must all be; one message per broken rule."""
    bad = []
    spec = job["spec"]
    jspec = spec["jobTemplate"]["spec"]
    pod = jspec["template"]["spec"]
    name = job["metadata"]["name"]
    if spec.get("concurrencyPolicy") != "Forbid":
        bad.append(f"{name}: concurrencyPolicy must be Forbid")
    if not spec.get("startingDeadlineSeconds", 0) >= 60:
        bad.append(f"{name}: startingDeadlineSeconds < 60")
    if spec.get("timeZone") != "Etc/UTC":
        bad.append(f"{name}: timeZone must be Etc/UTC")
    for key in ("successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
        if not isinstance(spec.get(key), int) or not 1 <= spec[key] <= 10:
            bad.append(f"{name}: {key} must be set (1..10)")
    if not isinstance(jspec.get("backoffLimit"), int) or jspec["backoffLimit"] > 3:
        bad.append(f"{name}: backoffLimit must be <= 3")
    deadline = jspec.get("activeDeadlineSeconds")
    if not isinstance(deadline, int) or deadline >= interval_seconds(spec["schedule"]):
        bad.append(f"{name}: activeDeadlineSeconds must be shorter than the interval")
    if not isinstance(jspec.get("ttlSecondsAfterFinished"), int):
        bad.append(f"{name}: ttlSecondsAfterFinished missing")
    psc = pod.get("securityContext", {})
    if psc.get("runAsNonRoot") is not True:
        bad.append(f"{name}: runAsNonRoot")
    if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        bad.append(f"{name}: seccomp RuntimeDefault")
    if pod.get("automountServiceAccountToken") is not False:
        bad.append(f"{name}: service account token mounted")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for c in pod["containers"]:
        sc = c.get("securityContext", {})
        if sc.get("readOnlyRootFilesystem") is not True:
            bad.append(f"{name}: readOnlyRootFilesystem")
        if sc.get("allowPrivilegeEscalation") is not False:
            bad.append(f"{name}: allowPrivilegeEscalation")
        if sc.get("capabilities", {}).get("drop") != ["ALL"]:
            bad.append(f"{name}: capabilities must drop ALL")
        res = c.get("resources", {})
        if not all(k in res.get(w, {}) for w in ("requests", "limits") for k in ("cpu", "memory")):
            bad.append(f"{name}: cpu and memory requests and limits")
        image = c.get("image", "")
        tag = image.rsplit("/", 1)[-1].partition(":")[2]
        if "@sha256:" not in image and (not tag or tag == "latest"):
            bad.append(f"{name}: image must be pinned ({image})")
        tmp = [m for m in c.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
        if not tmp or "emptyDir" not in volumes.get(tmp[0]["name"], {}):
            bad.append(f"{name}: /tmp must be an emptyDir")
        for var in c.get("env", []):
            ref = var.get("valueFrom", {}).get("secretKeyRef")
            looks_secret = any(w in var["name"] for w in ("PASSWORD", "SECRET", "KEY", "TOKEN"))
            if var["name"].endswith("_FILE") and str(var.get("value", "")).startswith("/"):
                looks_secret = False  # the path of a mounted file (a Secret volume), not a secret
            if looks_secret and ref is None:
                bad.append(f"{name}: {var['name']} must come from a secretKeyRef")
            if ref is not None and ref["name"] not in SECRETS:
                bad.append(f"{name}: unknown Secret {ref['name']}")
    return bad


@needs_kubectl
def test_every_overlay_builds_with_the_cronjobs_that_exist(
    built: dict[str, list[dict[str, Any]]],
) -> None:
    for target, docs in built.items():
        jobs = {j["metadata"]["name"]: j for j in cronjobs(docs)}
        assert set(jobs) == set(expected(target)), target
        for name, (schedule, args) in expected(target).items():
            spec = jobs[name]["spec"]
            assert spec["schedule"] == schedule
            container = spec["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
            assert container["args"] == args
        kinds = sorted(d["kind"] for d in docs)
        assert kinds.count("ServiceAccount") == 1 and "PrometheusRule" in kinds
    namespaces = {t: {d["metadata"].get("namespace") for d in built[t]} for t in TARGETS[1:]}
    assert namespaces == {
        "overlays/staging": {"researchflow-staging"},
        "overlays/production": {"researchflow"},
    }


def test_cronjob_commands_exist() -> None:
    from typer.testing import CliRunner

    from rfbackup.cli import app

    for _, args in {**EXPECTED, **PRODUCTION_ONLY}.values():
        done = CliRunner().invoke(app, [*args, "--help"])
        assert done.exit_code == 0, (args, done.output)
    assert CliRunner().invoke(app, ["backup", "no-such-component", "--help"]).exit_code != 0


@needs_kubectl
@pytest.mark.parametrize("version", VERSIONS)
def test_kubernetes_validate_strict(
    built: dict[str, list[dict[str, Any]]], version: str, tmp_path: Path
) -> None:
    files = []
    for target, docs in built.items():
        path = tmp_path / (target.replace("/", "-") + ".yaml")
        # the PrometheusRule is a CRD: no schema offline; checked by the tests below instead
        path.write_text(yaml.safe_dump_all([d for d in docs if d["kind"] != "PrometheusRule"]))
        files.append(str(path))
    done = subprocess.run(
        [str(VALIDATE), "--strict", "--quiet", "-k", version, *files],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "ERROR" not in done.stdout


def test_validator_knows_the_versions_offline() -> None:
    from kubernetes_validate.utils import all_versions

    assert set(VERSIONS) <= set(all_versions())


@needs_kubectl
def test_policy_holds_for_every_cronjob(built: dict[str, list[dict[str, Any]]]) -> None:
    jobs = [j for docs in built.values() for j in cronjobs(docs)]
    assert len(jobs) == sum(len(expected(t)) for t in TARGETS)
    assert [p for j in jobs for p in policy(j)] == []


@needs_kubectl
@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("spec.concurrencyPolicy", "Forbidden", "concurrencyPolicy must be Forbid"),
        ("spec.startingDeadlineSeconds", 30, "startingDeadlineSeconds"),
        ("spec.timeZone", "Europe/Paris", "timeZone"),
        ("spec.failedJobsHistoryLimit", None, "failedJobsHistoryLimit"),
        ("spec.jobTemplate.spec.backoffLimit", 6, "backoffLimit"),
        ("spec.jobTemplate.spec.activeDeadlineSeconds", 86400, "activeDeadlineSeconds"),
        ("spec.jobTemplate.spec.ttlSecondsAfterFinished", None, "ttlSecondsAfterFinished"),
        ("pod.securityContext.runAsNonRoot", False, "runAsNonRoot"),
        ("pod.securityContext.seccompProfile", None, "seccomp"),
        ("container.securityContext.readOnlyRootFilesystem", False, "readOnlyRootFilesystem"),
        ("container.securityContext.capabilities.drop", ["NET_RAW"], "capabilities"),
        ("container.resources", None, "requests and limits"),
        ("container.image", "ghcr.io/researchflow/rfbackup:latest", "pinned"),
        ("container.image", "ghcr.io/researchflow/rfbackup", "pinned"),
        ("container.env", [{"name": "PGPASSWORD", "value": "hunter2"}], "secretKeyRef"),
        ("pod.volumes", [], "emptyDir"),
    ],
)
def test_policy_catches_each_broken_rule(
    built: dict[str, list[dict[str, Any]]], path: str, value: object, expected: str
) -> None:
    job = copy.deepcopy(
        next(j for j in cronjobs(built["base"]) if j["metadata"]["name"] == "postgres-backup")
    )
    assert policy(job) == []
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    roots = {"spec": job["spec"], "pod": pod, "container": pod["containers"][0]}
    first, *middle, last = path.split(".")
    node = roots[first]
    for part in middle:
        node = node[part]
    if value is None:
        del node[last]
    else:
        node[last] = value
    problems = policy(job)
    assert problems and all(expected in p for p in problems), problems


def test_prometheusrule_is_the_alert_rules_file(tmp_path: Path) -> None:
    rules_file = ROOT / "deploy" / "prometheus" / "backup-alerts.yml"
    committed = (KUBE / "base" / "prometheusrule.yaml").read_text()
    assert committed == k8s.prometheus_rule_yaml(rules_file)  # regenerate: rfbackup k8s rules
    doc = yaml.safe_load(committed)
    assert doc["kind"] == "PrometheusRule" and doc["apiVersion"] == "monitoring.coreos.com/v1"
    assert doc["spec"]["groups"] == yaml.safe_load(rules_file.read_text())["groups"]
    if shutil.which("promtool"):  # the wrapped groups are valid Prometheus rules on their own
        extracted = tmp_path / "rules.yml"
        extracted.write_text(yaml.safe_dump({"groups": doc["spec"]["groups"]}))
        check = subprocess.run(["promtool", "check", "rules", str(extracted)], capture_output=True)
        assert check.returncode == 0, check.stdout


@needs_kubectl
def test_render_fills_config_and_keeps_secrets_out(tmp_path: Path) -> None:
    secret_values = {
        "PGPASSWORD": "pg-secret-4711",
        "RFBACKUP_S3__SECRET_ACCESS_KEY": "s3-secret-4711",
        "AWS_SECRET_ACCESS_KEY": "aws-secret-4711",
    }
    env = {
        "PATH": "/usr/bin:/bin",
        "RFBACKUP_CONFIG": str(tmp_path / "none.toml"),
        "RFBACKUP_SCHEDULE__POSTGRES": "15 3 * * *",
        "RFBACKUP_KUBERNETES__IMAGE": "registry.example/rfbackup:0.2.0",
        "RFBACKUP_REPOSITORY": "s3://prod-bucket/rf",
        **secret_values,
    }
    done = subprocess.run(
        [*RFBACKUP, "k8s", "render", "--overlay", "production"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    jobs = {j["metadata"]["name"]: j for j in cronjobs(docs)}
    assert jobs["postgres-backup"]["spec"]["schedule"] == "15 3 * * *"
    assert jobs["backup-retention"]["spec"]["schedule"] == "0 4 * * 0"
    images = {
        c["image"]
        for j in jobs.values()
        for c in j["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    }
    assert images == {"registry.example/rfbackup:0.2.0"}
    config = next(d for d in docs if d["kind"] == "ConfigMap")
    assert config["data"]["RFBACKUP_REPOSITORY"] == "s3://prod-bucket/rf"
    assert config["data"]["RFBACKUP_ENV"] == "production"
    for secret in secret_values.values():
        assert secret not in done.stdout
    assert [p for j in jobs.values() for p in policy(j)] == []

    bad = subprocess.run(
        [*RFBACKUP, "k8s", "render", "--overlay", "prod"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 3
    assert len(bad.stderr.strip().splitlines()) == 1 and "--overlay" in bad.stderr
    assert bad.stdout == ""
    not_rules = tmp_path / "not-rules.yml"
    not_rules.write_text("just: text\n")
    for rules, code in ((tmp_path / "missing.yml", 7), (not_rules, 3)):
        done = subprocess.run(
            [*RFBACKUP, "k8s", "rules", "--rules", str(rules)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == code, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and done.stdout == ""
