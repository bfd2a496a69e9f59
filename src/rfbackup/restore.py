"""Restoring a PostgreSQL backup without ever risking the database it replaces.

    find -> sha256 check (before touching any database) -> confirm -> create roles the server
    lacks -> load into a NEW database -> re-check sha256 of what was read -> compare row
    counts with the manifest -> swap by renaming (old one kept under a dated name)

Any failure before the swap drops the new database and leaves the current one as it was.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rfbackup import restore_checks, restore_plan, restore_sidecars, signing
from rfbackup.config import Settings
from rfbackup.engine import fetch
from rfbackup.engine.fetch import Located, identities_for, locate, plaintext
from rfbackup.errors import (
    Aborted,
    ConfigError,
    IntegrityError,
    RestoreError,
)
from rfbackup.logs import log
from rfbackup.naming import BackupName
from rfbackup.pipeline import (
    HashingReader,
    Readable,
    read_chunks,
)
from rfbackup.progress import Reporter
from rfbackup.restore_plan import RestorePlan
from rfbackup.sources.postgres import dbprops, sqlguard, tools
from rfbackup.sources.postgres import restore as pg
from rfbackup.sources.postgres.dumpfile import DumpShape, read_through
from rfbackup.sources.postgres.target import PostgresTarget
from rfbackup.storage.local import storage_error

STAMP = "%Y%m%d_%H%M%S"
MAX_IDENT = 63


def verify_stored(
    loc: Located, allow_unverified: bool, identities: list[Any], bin_dir: Path | None = None
) -> None:
    """Refuse anything that is not provably the bytes we wrote, before any database is touched.

    For an encrypted backup, also prove the identity opens it."""
    entry, where = loc.entry, loc.repo.describe(loc.key)
    fetch.check_status(loc)
    if entry.manifest is None:
        if not allow_unverified:
            raise IntegrityError(
                f"{where} has no manifest, so it cannot be verified; "
                "re-run with --allow-unverified to restore it anyway"
            )
        _test_decompress(loc, identities, bin_dir)
        return
    fetch.verify(loc, entry.manifest, identities)


def _dump_format(loc: Located) -> str:
    if loc.manifest is not None:
        return str(loc.manifest.dump.get("format", "plain"))
    parsed = BackupName.parse(loc.key)
    return parsed.dump_format if parsed else "plain"


def _test_decompress(loc: Located, identities: list[Any], bin_dir: Path | None) -> None:
    """For files without a manifest: the whole stream must decompress (like ``gzip -t``)
    and be a whole pg_dump (dumpfile.read_through)."""
    where = loc.repo.describe(loc.key)
    with loc.repo.open(loc.key) as raw, plaintext(loc, raw, identities) as stream:
        read_through(stream, _dump_format(loc), where, bin_dir)


def _identifier(base: str, suffix: str) -> str:
    room = MAX_IDENT - len(suffix.encode())
    trimmed = base.encode()[:room].decode("utf-8", "ignore")
    return trimmed + suffix


def restore_postgres(
    settings: Settings,
    name: str,
    *,
    target_db: str | None = None,
    confirm: Callable[[str], bool],
    allow_unverified: bool = False,
    jobs: int | None = None,
    repo_url: str | None = None,
    force_target: bool = False,
    allow_empty: bool = False,
    db_properties: bool = True,
) -> dict[str, Any]:
    t0 = time.monotonic()
    loc = locate(settings, name, repo_url)
    where = loc.repo.describe(loc.key)
    signature = signing.check(
        settings.signing, loc.manifest, where, allow_unverified, settings.env.value
    )
    identities = identities_for(settings, loc)
    base = settings.postgres_target()
    verify_stored(loc, allow_unverified, identities, base.bin_dir)
    m = loc.manifest
    live = target_db or base.dbname or (m.database.get("name") if m else None)
    if not live:
        raise ConfigError("no target database: set PGDATABASE, DATABASE_URL or --target-db")
    props = restore_sidecars.db_properties(loc, identities) if db_properties else None
    plan = RestorePlan(
        loc.key,
        base.server,
        live,
        replace=target_db is None,
        source_db=m.database.get("name") if m else None,
        backup_env=m.environment if m else None,
        env=settings.env.value,
        backup_taken=loc.entry.created_at.replace(tzinfo=loc.entry.created_at.tzinfo or UTC),
        needed_bytes=int(m.database.get("size_bytes") or 0) if m else 0,
    )
    admin = pg.admin_connection(base)
    try:
        restore_plan.gather(plan, admin, base.host)
        plan.check_target(force_target)
        if target_db is not None and plan.exists:
            raise RestoreError(f"database {live!r} already exists; --target-db needs a new name")
        for warning in plan.warnings:
            log.warning("%s", warning)
        if not confirm(plan.question()):
            raise Aborted("restore cancelled; nothing was changed")
        stamp = datetime.now(UTC).strftime(STAMP)
        # Always a working name, even for --target-db: a killed restore never leaves a
        # half-filled database under the name that was asked for.
        work = _identifier(live, f"_restore_{stamp}")
        if pg.database_exists(admin, work):
            raise RestoreError(f"database {work!r} already exists")
        restore_sidecars.create_missing_roles(loc, base, admin, identities)
        log.info("restoring %s into new database %s", loc.key, work)
        pg.create_database(admin, work, m.database if m else {})
        try:
            _load(
                loc,
                base,
                work,
                settings.postgres.restore_jobs if jobs is None else jobs,
                settings.tmp_dir,
                identities,
            )
            counts = restore_checks.check_counts(loc, base, work)
            if plan.replace and plan.exists and not allow_empty:
                restore_checks.refuse_empty_over_data(base, work, live, counts)
            if props is not None:
                dbprops.apply(admin, work, props)
                log.info("database properties (owner, ACL, settings, comment) applied")
            elif not db_properties:
                log.warning("--no-db-properties: the backup's owner, ACL and settings not applied")
            kept = None
            if target_db is None:
                kept = _identifier(live, f"_pre_restore_{stamp}") if plan.exists else None
                pg.swap(admin, live, work, kept)
            else:
                pg.rename(admin, work, live)
        except BaseException:
            log.warning(
                "restore failed; dropping %s, %s is unchanged",
                work,
                live if target_db is None else "the server",
            )
            pg.drop_database(admin, work)
            raise
    finally:
        admin.close()
    result = {
        "backup": loc.key,
        "host": base.host,  # a host name, a socket directory, or None: libpq's default
        "port": base.port,
        "database": live,
        "previous_kept_as": kept,
        "tables": len(counts),
        "rows": sum(counts.values()),
        "verified": m is not None,
        "db_properties": props is not None,
        "signature": signature,
        "duration_seconds": round(time.monotonic() - t0, 3),
    }
    if kept:
        log.info("restored %s into %s; previous database kept as %s", loc.key, live, kept)
    else:
        log.info("restored %s into %s", loc.key, live)
    return result


def _load(
    loc: Located,
    base: PostgresTarget,
    dbname: str,
    jobs: int,
    tmp_dir: Path | None,
    identities: list[Any],
) -> None:
    m = loc.manifest
    where = loc.repo.describe(loc.key)
    total = m.data.stored_bytes if m else (loc.entry.size_bytes or None)
    with loc.repo.open(loc.key) as raw_fh, Reporter(f"restoring {dbname}", total) as p:
        raw = HashingReader(raw_fh)
        with plaintext(loc, raw, identities) as clear:
            stream = DumpShape(clear, _dump_format(loc), where)
            if _dump_format(loc) == "custom" and jobs > 1:
                _load_custom_parallel(stream, raw, base, dbname, jobs, tmp_dir, p.advance)
            else:
                reader = _Counting(stream, raw, p.advance)
                if _dump_format(loc) == "custom":
                    pg.load_custom(base, dbname, reader, None, 1, lambda n: None)
                else:
                    key = m.dump.get("restrict_key") if m else None
                    psql = tools.version(tools.find("psql", base.bin_dir))
                    guarded = sqlguard.for_psql(reader, key, where, psql)
                    pg.load_plain(base, dbname, guarded, lambda n: None)
            for _ in read_chunks(raw):  # hash whatever trails the compressed stream
                pass
    if m is not None and raw.sha256 != m.data.sha256:
        raise IntegrityError(f"{where} changed while it was being restored")


class _Counting:
    """Reports progress in stored bytes while psql reads decompressed ones."""

    def __init__(self, stream: Any, raw: HashingReader, advance: Callable[[int], None]) -> None:
        self.stream, self.raw, self.advance, self._seen = stream, raw, advance, 0

    def read(self, n: int = -1) -> bytes:
        data: bytes = self.stream.read(n)
        self.advance(self.raw.size - self._seen)
        self._seen = self.raw.size
        return data


def _load_custom_parallel(
    stream: Readable,
    raw: HashingReader,
    base: PostgresTarget,
    dbname: str,
    jobs: int,
    tmp_parent: Path | None,
    advance: Callable[[int], None],
) -> None:
    """pg_restore --jobs needs a seekable file: decompress to a private temp file first."""
    try:
        tmp_dir = tempfile.mkdtemp(prefix="rfbackup-restore-", dir=tmp_parent)
    except OSError as exc:
        raise storage_error(
            exc, f"a temporary folder in {tmp_parent or tempfile.gettempdir()}"
        ) from None
    try:
        path = os.path.join(tmp_dir, "dump")
        try:
            with open(path, "wb") as out:
                seen = 0
                for chunk in read_chunks(stream):
                    out.write(chunk)
                    advance(raw.size - seen)
                    seen = raw.size
        except OSError as exc:  # our scratch space, not the backup: disk full is exit 8
            raise storage_error(exc, f"the temporary copy {path}") from None
        pg.load_custom(base, dbname, None, path, jobs, lambda n: None)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
