"""``rfbackup dr corruption``: the runbook's scenario 1, database corruption.

1. STANDBY (ConfigMap ROS_MODE=STANDBY, restart)      undo: rfbackup mode live
2. identify the last known good backup (sha256-verified; or --backup NAME)
3. restore it over the database (the damaged one is kept as DB_pre_restore_...)
                                                      undo: rename it back
4. LIVE (remove ROS_MODE, restart)
5. health: connect, count the tables' rows, rfbackup status
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rfbackup.dr.playbook import Context, Step
from rfbackup.errors import NotFound


def standby(ctx: Context) -> dict[str, Any]:
    from rfbackup.dr.mode import switch

    doc = switch(ctx.settings, "STANDBY", api=ctx.kube_api)
    return {"standby": doc.get("namespace") or doc.get("env_file")}


def live(ctx: Context) -> dict[str, Any]:
    from rfbackup.dr.mode import switch

    switch(ctx.settings, "LIVE", api=ctx.kube_api)
    return {}


def mode_plan(mode: str) -> Callable[[Context], str]:
    def plan(ctx: Context) -> str:
        opts = ctx.settings.mode
        if opts.platform == "compose":
            from rfbackup.dr.compose import command

            return f"{opts.key} in {opts.compose_env_file}; " + " ".join(command(opts))
        from rfbackup.dr.kube import plan as kplan

        return "; ".join(s.call for s in kplan(opts, mode, "<now>"))

    return plan


def identify(ctx: Context) -> dict[str, Any]:
    """The newest backup of the database whose stored bytes match its manifest."""
    from rfbackup import catalog
    from rfbackup.engine.fetch import identities_for, locate
    from rfbackup.restore import verify_stored

    s = ctx.settings
    dbname = s.postgres_target().dbname
    named = ctx.options.get("backup")
    candidates = (
        [named]
        if named
        else [
            e.name
            for e in catalog.scan(s.open_repository())
            if e.component == "postgres"
            and e.good
            and e.manifest is not None
            and (e.manifest.subject or e.manifest.database.get("name")) in (None, dbname)
        ]
    )
    problems = []
    for name in candidates:
        loc = locate(s, name)
        try:
            verify_stored(loc, False, identities_for(s, loc), s.pg_bin)
        except Exception as exc:  # damaged: try the one before, say so
            problems.append(f"{name}: {exc}")
            continue
        return {"backup": loc.key, "skipped_damaged": problems}
    raise NotFound(
        f"no good backup of {dbname!r} to restore"
        + (f" ({'; '.join(problems)})" if problems else "")
    )


def restore(ctx: Context) -> dict[str, Any]:
    from rfbackup.restore import restore_postgres

    result = restore_postgres(ctx.settings, ctx.state["backup"], confirm=lambda q: True)
    return {"restored_rows": result["rows"], "previous_kept_as": result["previous_kept_as"]}


def health(ctx: Context) -> str:
    from rfbackup.drill.sampling import counts
    from rfbackup.sources.postgres.dump import connect, list_tables

    target = ctx.settings.postgres_target()
    with connect(target, autocommit=True) as conn:
        found = counts(conn, list_tables(conn.cursor()))
    return f"{target.display} answers: {len(found)} tables, {sum(found.values())} rows"


def steps() -> list[Step]:
    return [
        Step(
            "standby",
            "put the application in STANDBY",
            mode_plan("STANDBY"),
            standby,
            undo="rfbackup mode live",
        ),
        Step(
            "identify",
            "identify the last known good backup",
            lambda ctx: (
                ctx.options.get("backup")
                or "newest postgres backup in the repository whose sha256 matches its manifest"
            ),
            identify,
            check=lambda ctx: f"{ctx.state['backup']}",
        ),
        Step(
            "restore",
            "restore it over the database",
            lambda ctx: f"rfbackup restore postgres {ctx.state.get('backup', '<backup>')} --yes",
            restore,
            check=health,
            undo="the damaged database is kept as DB_pre_restore_STAMP: rename it back",
        ),
        Step("live", "return to LIVE", mode_plan("LIVE"), live),
        Step(
            "health",
            "health check",
            lambda ctx: "connect, count rows",
            lambda ctx: {},
            check=health,
        ),
    ]


MANUAL = [
    "Check the application's own health page and error rates.",
    "When all is well, drop the kept damaged database (rfbackup prune-databases).",
]
