"""``rfbackup k8s render|rules``: the Kubernetes manifests, with this configuration's values."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rfbackup.cli.common import EnvOption, settings

app = typer.Typer(help="Kubernetes manifests (deploy/kubernetes).", no_args_is_help=True)


@app.command("render")
def render(
    overlay: Annotated[
        str | None,
        typer.Option("--overlay", help="staging or production [default: the base]"),
    ] = None,
    env: EnvOption = None,
) -> None:
    """Print the CronJobs, RBAC, ConfigMap and PrometheusRule, ready for kubectl apply -f -.

    Schedules, image, namespace and the non-secret settings come from the configuration;
    credentials stay references to the Secrets postgres-credentials and backup-s3-credentials.
    """
    from rfbackup.ops import k8s

    typer.echo(k8s.dump(k8s.render(settings(env), overlay)), nl=False)


@app.command("rules")
def rules(
    rules_file: Annotated[
        Path | None,
        typer.Option("--rules", help="[default: deploy/prometheus/backup-alerts.yml]"),
    ] = None,
) -> None:
    """Print the PrometheusRule generated from the Prometheus alert rules file."""
    from rfbackup.ops import k8s

    path = rules_file or k8s.DEPLOY / "prometheus" / "backup-alerts.yml"
    typer.echo(k8s.prometheus_rule_yaml(path), nl=False)
