"""``rfbackup dr undelete``: the runbook's scenario 2, accidental deletion.

1. STANDBY at once                                    undo: rfbackup mode live
2. PITR into a side cluster at --time (before the deletion)
3. export the rows of --table that production lacks (or holds differently) by primary
   key, as SQL or CSV files in --out
4. with --merge: insert the missing rows into production in ONE transaction (never
   overwriting a row production has, unless --overwrite)
5. remove the side cluster
6. LIVE
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from rfbackup.dr import rows, sidecluster
from rfbackup.dr.corruption import live, mode_plan, standby
from rfbackup.dr.playbook import Context, Step
from rfbackup.logs import log


def find_delete(ctx: Context) -> dict[str, Any]:
    """--before-delete: the one committed DELETE on the first table in the archived WAL
    (pg_waldump, via `rfbackup pitr find`); more than one is refused, never guessed."""
    from rfbackup.errors import NotFound
    from rfbackup.pitr.find import find
    from rfbackup.pitr.recover import parse_time

    if ctx.options.get("time"):
        return {"time": ctx.options["time"]}
    since = ctx.options.get("since")
    found = find(
        ctx.settings, ctx.options["tables"][0], "delete", parse_time(since) if since else None
    )
    done = [c for c in found.changes if not c.aborted and c.committed_at is not None]
    if not done:
        raise NotFound(f"no committed DELETE on {found.table} in the archived WAL")
    if len(done) > 1:
        listed = ", ".join(f"xid {c.xid} at {c.committed_at:%Y-%m-%dT%H:%M:%S.%fZ}" for c in done)
        raise NotFound(
            f"{len(done)} transactions deleted from {found.table} ({listed}): choose with --time"
        )
    target = done[0].target_time()
    assert target is not None
    return {"time": target.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "delete_xid": done[0].xid}


def recover(ctx: Context) -> dict[str, Any]:
    from rfbackup.pitr.recover import Target

    return sidecluster.recover(ctx.settings, Target("time", ctx.state["time"]))


def _diffs(ctx: Context) -> list[rows.Diff]:
    from rfbackup.sources.postgres.dump import connect

    side = sidecluster.target(ctx.settings, int(ctx.state["side_port"]))
    prod = ctx.settings.postgres_target()
    with connect(side, autocommit=True) as s, connect(prod, autocommit=True) as p:
        return [rows.diff(s, p, t) for t in ctx.options["tables"]]


def export(ctx: Context) -> dict[str, Any]:
    from rfbackup.sources.postgres.dump import connect

    out = Path(ctx.options["out"])
    out.mkdir(parents=True, exist_ok=True)
    fmt, overwrite = ctx.options["format"], ctx.options["overwrite"]
    found: dict[str, Any] = {}
    with connect(ctx.settings.postgres_target(), autocommit=True) as conn:
        for d in _diffs(ctx):
            # The file name from the table's name, made safe (no "/", no leading dot).
            safe = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{d.table.schema}.{d.table.relname}")
            path = out / f"{safe.lstrip('.') or 'table'}.{fmt}"
            text = (
                rows.export_sql(conn, d, overwrite)
                if fmt == "sql"
                else rows.export_csv(d, overwrite)
            )
            path.write_text(text)
            path.chmod(0o600)
            found[d.table.name] = {
                "missing": len(d.missing),
                "different": len(d.different),
                "file": str(path),
            }
            log.info(
                "%s: %d row(s) missing in production, %d different; written to %s",
                d.table.name,
                len(d.missing),
                len(d.different),
                path,
            )
    return {"exported": found}


def merge(ctx: Context) -> dict[str, Any]:
    from rfbackup.sources.postgres.dump import connect

    if not ctx.options["merge"]:
        return {"merged": None}
    diffs = _diffs(ctx)
    with connect(ctx.settings.postgres_target(), autocommit=False) as conn:
        done = rows.merge(conn, diffs, ctx.options["overwrite"])
    return {"merged": done}


def cleanup(ctx: Context) -> dict[str, Any]:
    if ctx.state.get("side_dir"):
        sidecluster.remove(ctx.settings, ctx.state["side_dir"])
    return {}


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
            "find",
            "find the moment before the deletion",
            lambda ctx: (
                f"--time {ctx.options['time']}"
                if ctx.options.get("time")
                else f"rfbackup pitr find --table {ctx.options['tables'][0]} --op delete "
                "(pg_waldump over the archived WAL): exactly one DELETE transaction"
            ),
            find_delete,
            check=lambda ctx: f"target {ctx.state['time']}",
        ),
        Step(
            "recover",
            "point-in-time recovery into a side cluster",
            lambda ctx: (
                f"rfbackup pitr restore --target-time {ctx.state.get('time', 'T')} --start "
                "--port FREE --data-dir TMP (127.0.0.1 only, archiving off)"
            ),
            recover,
            check=lambda ctx: f"recovered to {ctx.state.get('recovered_to')}",
            undo="the side cluster is removed by the last step",
        ),
        Step(
            "export",
            "export the rows production lacks",
            lambda ctx: (
                f"compare {', '.join(ctx.options['tables'])} by primary key; write "
                f"{ctx.options['format'].upper()} files into {ctx.options['out']}"
            ),
            export,
            check=lambda ctx: "; ".join(
                f"{t}: {v['missing']} missing, {v['different']} different"
                for t, v in ctx.state["exported"].items()
            ),
        ),
        Step(
            "merge",
            "merge them into production (one transaction)",
            lambda ctx: (
                "INSERT ... ON CONFLICT "
                + ("DO UPDATE (--overwrite)" if ctx.options["overwrite"] else "DO NOTHING")
                if ctx.options["merge"]
                else "skipped: no --merge (apply the exported files yourself)"
            ),
            merge,
            check=lambda ctx: f"inserted {ctx.state['merged']}" if ctx.state["merged"] else "",
            undo="the exported files list every row merged: delete them by key",
        ),
        Step("cleanup", "remove the side cluster", lambda ctx: "pg_ctl stop; rm -r TMP", cleanup),
        Step("live", "return to LIVE", mode_plan("LIVE"), live),
    ]


MANUAL = [
    "Check the recovered rows in the application.",
    "Without --merge: review the exported files, then apply them with psql.",
]
