"""``rfbackup dr rebuild``: the runbook's scenario 3, from the repository alone, into fresh
targets, in order: configuration (git clone), then PostgreSQL (the newest verified logical
backup onto the server the settings name, normally a new empty one), then health checks.
Components whose restore is not installed here are listed as manual steps, with DNS.

    1. config    newest bundle -> --config-dest (skipped when there is none)
    2. postgres  newest good logical backup -> PGHOST/PGDATABASE (must not hold data)
    3. health    connect, count rows, rfbackup status
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rfbackup.dr.corruption import health, identify
from rfbackup.dr.playbook import Context, Step
from rfbackup.errors import RestoreError


def config(ctx: Context) -> dict[str, Any]:
    from rfbackup.sources.config.service import newest, restore

    entry = newest(ctx.settings.open_repository())
    if entry is None:
        return {"config": "no configuration bundle in the repository: skipped"}
    dest = Path(ctx.options["config_dest"])
    result = restore(ctx.settings, entry.name.rpartition("/")[2], dest)
    return {"config": f"{result['backup']} cloned into {dest}"}


def postgres(ctx: Context) -> dict[str, Any]:
    from rfbackup.restore import restore_postgres
    from rfbackup.sources.postgres import restore as pg

    target = ctx.settings.postgres_target()
    with pg.admin_connection(target) as admin:
        exists = bool(target.dbname) and pg.database_exists(admin, str(target.dbname))
    if exists and pg.holds_data(target, str(target.dbname)):
        raise RestoreError(
            f"database {target.dbname!r} on {target.server} already holds data: a rebuild "
            "restores into a fresh server (use `rfbackup dr corruption` to replace it)"
        )
    facts = identify(ctx)
    result = restore_postgres(ctx.settings, facts["backup"], confirm=lambda q: True)
    return {**facts, "restored_rows": result["rows"]}


def status(ctx: Context) -> str:
    from datetime import UTC, datetime

    from rfbackup.ops.status import collect

    text = health(ctx)
    st = collect(ctx.settings, datetime.now(UTC))
    states = ", ".join(f"{c.component} {c.state}" for c in st.components)
    return f"{text}; status: {states}"


def steps() -> list[Step]:
    return [
        Step(
            "config",
            "restore the configuration repository",
            lambda ctx: f"rfbackup restore config NEWEST {ctx.options['config_dest']}",
            config,
            check=lambda ctx: str(ctx.state["config"]),
        ),
        Step(
            "postgres",
            "restore PostgreSQL onto the new server",
            lambda ctx: (
                f"rfbackup restore postgres NEWEST --yes "
                f"(onto {ctx.settings.postgres_target().display})"
            ),
            postgres,
            check=lambda ctx: f"{ctx.state['backup']}: {ctx.state['restored_rows']} rows",
        ),
        Step(
            "health",
            "health checks",
            lambda ctx: "connect, count rows, rfbackup status",
            lambda ctx: {},
            check=status,
        ),
    ]


MANUAL = [
    "Redis and artifact volumes: restore them with their own commands (see their docs).",
    "Set the role passwords from the secret store (backups never contain them).",
    "Deploy the application from the restored configuration, verify its health checks.",
    "Switch DNS / load balancers to the new site, then `rfbackup mode live`.",
    "Start backing up from the new site: `rfbackup schedule crontab` or the CronJobs.",
]
