"""The checks between loading and swapping: the restored database must reproduce what the
manifest recorded (rows, large objects, sequences, materialized views, no extra table), and
an empty result must not replace a database that holds data."""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg

from rfbackup.errors import RestoreError, RfBackupError
from rfbackup.logs import log
from rfbackup.sources.postgres import restore as pg
from rfbackup.sources.postgres import verify_counts
from rfbackup.sources.postgres.target import PostgresTarget

if TYPE_CHECKING:
    from rfbackup.engine.fetch import Located


def check_counts(loc: Located, base: PostgresTarget, dbname: str) -> dict[str, int]:
    """Row counts, and (for manifests that record them) large objects, sequences and
    materialized views: all must match, and no table may be extra."""
    m = loc.manifest
    only = bool(m is not None and m.checks.get("row_counts_only"))
    counts, actual = pg.restored_counts(base, dbname, only)
    if m is None:
        log.warning("%s has no manifest: row counts not checked", loc.key)
        return counts
    problems = pg.compare_counts(m.row_counts, counts)
    if m.checks:
        problems += verify_counts.compare(m.checks, actual)
    if problems:
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        raise RestoreError(
            f"restored data does not match the backup: {'; '.join(problems[:3])}{more}"
        )
    if m.checks:
        log.info(
            "row counts match the manifest for all %d tables; %d large objects, "
            "%d sequences and %d materialized views match too",
            len(counts),
            actual["large_objects"]["count"],
            len(m.checks.get("sequences", {})),
            len(m.checks.get("matviews", {})),
        )
    else:
        log.info("row counts match the manifest for all %d tables", len(counts))
    return counts


def refuse_empty_over_data(
    base: PostgresTarget, work: str, live: str, counts: dict[str, int]
) -> None:
    """An empty restore result may replace an empty database, never one that holds data."""
    if any(counts.values()) or pg.large_object_count(base, work):
        return
    try:
        holds = pg.holds_data(base, live)
    except (psycopg.Error, RfBackupError) as exc:  # cannot tell: assume it does
        log.warning("cannot tell whether %s holds data (%s)", live, exc)
        holds = True
    if holds:
        raise RestoreError(
            f"the backup restored an empty database, and {live!r} holds data; "
            "re-run with --allow-empty to replace it anyway"
        )
