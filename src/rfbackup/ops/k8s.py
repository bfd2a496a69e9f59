"""Kubernetes manifests: the PrometheusRule generated from the alert rules, and the overlays
rendered with this configuration's values filled in.

Rendering runs ``kubectl kustomize`` on ``deploy/kubernetes/overlays/NAME`` and then sets what
the configuration decides: namespace, image, the backup schedules and the non-secret settings
in the ``rfbackup-config`` ConfigMap. Secrets stay references (secretKeyRef); no value read
from the configuration that is secret is ever written into a manifest.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from rfbackup.config import Settings
from rfbackup.errors import ConfigError, NotFound

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
OVERLAYS = ("staging", "production")
# CronJob name -> the schedule setting that drives it
SCHEDULED = {
    "postgres-backup": "postgres",
    "postgres-base-backup": "postgres_base",
    "backup-drill": "drill",
    "artifacts-backup": "artifacts",
    "redis-backup": "redis",
}
CONFIGMAP = "rfbackup-config"


def deploy_dir(settings: Settings) -> Path:
    folder = settings.kubernetes.manifests_dir or DEPLOY / "kubernetes"
    if not (folder / "base" / "kustomization.yaml").is_file():
        raise NotFound(f"no Kustomize base in {folder} (set RFBACKUP_KUBERNETES__MANIFESTS_DIR)")
    return folder


def prometheus_rule(rules_file: Path) -> dict[str, Any]:
    """A PrometheusRule (prometheus-operator) holding exactly the groups of ``rules_file``."""
    try:
        groups = yaml.safe_load(rules_file.read_text())["groups"]
    except OSError as exc:
        raise NotFound(f"cannot read the alert rules {rules_file}: {exc.strerror}") from None
    except (yaml.YAMLError, TypeError, KeyError):
        raise ConfigError(f"{rules_file} is not a Prometheus rules file (no groups)") from None
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "backup-alerts",
            "labels": {"app.kubernetes.io/name": "rfbackup", "role": "alert-rules"},
        },
        "spec": {"groups": groups},
    }


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (PromQL) as | blocks, as people write them."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(doc: Any) -> str:
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=1000)


def prometheus_rule_yaml(rules_file: Path) -> str:
    header = (
        "# Generated from deploy/prometheus/backup-alerts.yml by `rfbackup k8s rules`: "
        "edit that file, not this one.\n"
    )
    return header + to_yaml(prometheus_rule(rules_file))


def kustomize(folder: Path) -> list[dict[str, Any]]:
    try:
        done = subprocess.run(
            ["kubectl", "kustomize", str(folder)], capture_output=True, text=True, timeout=60
        )
    except FileNotFoundError:
        raise ConfigError("kubectl is not installed: it builds the Kustomize overlays") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["failed"])[-1]
        raise ConfigError(f"kubectl kustomize {folder}: {last}")
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def render(settings: Settings, overlay: str | None) -> list[dict[str, Any]]:
    root = deploy_dir(settings)
    if overlay is not None and overlay not in OVERLAYS:
        raise ConfigError(f"--overlay must be one of {', '.join(OVERLAYS)}, not {overlay!r}")
    docs = kustomize(root / "overlays" / overlay if overlay else root / "base")
    k = settings.kubernetes
    values = {
        "RFBACKUP_ENV": overlay or settings.env.value,
        "PGHOST": k.pghost,
        "PGDATABASE": k.pgdatabase,
    }
    if settings.repository:
        values["RFBACKUP_REPOSITORY"] = settings.repository
    if settings.metrics.pushgateway_url:
        if urlsplit(settings.metrics.pushgateway_url).password:
            raise ConfigError("the Pushgateway URL holds a password: it cannot go in a manifest")
        values["RFBACKUP_METRICS__PUSHGATEWAY_URL"] = settings.metrics.pushgateway_url
    for doc in docs:
        meta = doc.setdefault("metadata", {})
        if overlay is None and "namespace" not in meta and _namespaced(doc):
            meta["namespace"] = k.namespace
        if doc["kind"] == "ConfigMap" and meta["name"].startswith(CONFIGMAP):
            doc["data"].update(values)
        if doc["kind"] == "CronJob":
            spec = doc["spec"]
            setting = SCHEDULED.get(meta["name"])
            if setting:
                spec["schedule"] = getattr(settings.schedule, setting)
            for c in spec["jobTemplate"]["spec"]["template"]["spec"]["containers"]:
                c["image"] = k.image
    return docs


def _namespaced(doc: dict[str, Any]) -> bool:
    return doc["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding")


def dump(docs: list[dict[str, Any]]) -> str:
    return "---\n".join(to_yaml(d) for d in docs)
