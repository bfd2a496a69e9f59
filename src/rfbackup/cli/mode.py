"""``rfbackup mode standby|live``: the runbook's STANDBY/LIVE switch."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from rfbackup.cli.common import EnvOption, JsonOption, print_json, settings


class Mode(StrEnum):
    standby = "standby"
    live = "live"


def mode(
    target: Annotated[
        Mode,
        typer.Argument(metavar="MODE", help="standby (no writes) or live: the mode to switch to."),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print every API call or command; change nothing.")
    ] = False,
    env: EnvOption = None,
    as_json: JsonOption = False,
) -> None:
    """Put ResearchFlow in STANDBY (no writes) or back to LIVE, and restart it.

    Kubernetes: patches ROS_MODE in the ConfigMap (researchflow-config; [mode] in
    rfbackup.toml), restarts the deployments (orchestrator), waits for the rollout and checks
    the new pods are running. Docker Compose ([mode] platform = "compose"): rewrites ROS_MODE
    in the env file and re-creates the services.
    """
    from rfbackup.dr.mode import switch

    doc = switch(settings(env), target.value.upper(), dry_run)
    if as_json:
        print_json(doc)
        return
    if doc["platform"] == "compose":
        typer.echo(f"{'would set' if dry_run else 'set'} {doc['mode']} in {doc['env_file']}")
        typer.echo(("would run: " if dry_run else "ran: ") + " ".join(doc["command"]))
        return
    for step in doc["steps"]:
        mark = "plan" if dry_run else ("done" if step["done"] else "----")
        typer.echo(
            f"[{mark}] {step['what']}: {step['call']}"
            + (f" ({step['detail']})" if step["detail"] else "")
        )
    if not dry_run:
        typer.echo(f"{doc['namespace']} is now {doc['mode']}")
