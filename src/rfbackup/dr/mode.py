"""`rfbackup mode standby|live`: the one entry point, for Kubernetes or Docker Compose."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rfbackup.dr import compose, kube
from rfbackup.logs import log

if TYPE_CHECKING:
    from rfbackup.config import Settings

MODES = ("STANDBY", "LIVE")


def switch(settings: Settings, mode: str, dry_run: bool = False, api: Any = None) -> dict[str, Any]:
    """Put the application in ``mode``; with ``dry_run``, only the plan (exact calls)."""
    opts = settings.mode
    mode = mode.upper()
    assert mode in MODES
    doc: dict[str, Any] = {"mode": mode, "platform": opts.platform, "dry_run": dry_run}
    if opts.platform == "compose":
        value = "STANDBY" if mode == "STANDBY" else None
        argv = compose.command(opts)
        doc.update(env_file=str(opts.compose_env_file), command=argv)
        if dry_run:
            return doc
        doc["env_file_changed"] = compose.set_mode(opts.compose_env_file, opts.key, value)
        compose.restart(opts, opts.rollout_timeout_seconds)
        log.info("compose: %s=%s, %s re-created", opts.key, mode, ", ".join(opts.compose_services))
        return doc
    doc.update(namespace=opts.namespace, configmap=opts.configmap)
    if dry_run:
        doc["steps"] = [s.to_dict() for s in kube.plan(opts, mode, "<now>")]
        return doc
    steps = kube.Switch(opts, mode, api if api is not None else kube.api_client(opts)).run()
    doc["steps"] = [s.to_dict() for s in steps]
    log.info("%s is %s: %s restarted", opts.namespace, mode, ", ".join(opts.deployments))
    return doc
