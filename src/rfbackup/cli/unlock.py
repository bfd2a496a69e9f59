"""``rfbackup unlock``: show, or with --force remove, the lease a job holds in the repository."""

from __future__ import annotations

from typing import Annotated

import typer

from rfbackup.cli.common import EnvOption, JsonOption, RepoOption, print_json, settings
from rfbackup.errors import AlreadyRunning, NotFound


def unlock(
    component: Annotated[
        str,
        typer.Option("--component", help="Whose lease: postgres (backup, prune) or postgres-base."),
    ] = "postgres",
    force: Annotated[
        bool, typer.Option("--force", help="Remove the lease even if it looks alive.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only show the holder; remove nothing.")
    ] = False,
    env: EnvOption = None,
    repo: RepoOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show, or remove, the lease a backup or prune job holds in the repository.

    A lease expires by itself (locks.lease_seconds after its last heartbeat). A stale one is removed; a live one only with --force, when you know its holder is gone and cannot wait.
    """  # noqa: E501
    from rfbackup.lease import break_lease, is_live, lease_key, read

    s = settings(env, repo)
    repository = s.open_repository()
    current = read(repository, component)
    holder = current[0] if current else None
    live = holder is None or is_live(holder)
    if current is not None and live and not force and not dry_run:
        who = holder.describe() if holder else "an unreadable lease"
        raise AlreadyRunning(
            f"{repository.describe(lease_key(component))} is held by {who}; "
            "add --force if that job is dead"
        )
    if current is None and not dry_run:
        raise NotFound(f"no lease {repository.describe(lease_key(component))}")
    if current is not None:
        break_lease(repository, component, dry_run)
    doc = {
        "lease": repository.describe(lease_key(component)),
        "holder": holder.to_dict() if holder else None,
        "removed": current is not None and not dry_run,
        "dry_run": dry_run,
    }
    if as_json:
        print_json(doc)
    else:
        verb = "would remove" if dry_run else "removed"
        if current is None:
            typer.echo(f"no lease {doc['lease']}", err=True)
        else:
            typer.echo(f"{verb} {doc['lease']}: {holder.describe() if holder else 'unreadable'}")
