"""Restoring a PostgreSQL backup without ever risking the database it replaces.

    find -> sha256 check (before touching any database) -> confirm -> create roles the server
    lacks -> load into a NEW database -> re-check sha256 of what was read -> compare row
    counts with the manifest -> swap by renaming (old one kept under a dated name)

Any failure before the swap drops the new database and leaves the current one as it was.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from rfbackup import catalog
from rfbackup.backup import repository_lock
from rfbackup.config import PostgresTarget, Settings
from rfbackup.errors import (
    Aborted,
    ConfigError,
    IntegrityError,
    NotFound,
    RestoreError,
    StorageError,
)
from rfbackup.logs import log
from rfbackup.manifest import Manifest
from rfbackup.naming import AGE_SUFFIX, BackupName
from rfbackup.pipeline import (
    DECOMPRESSION_ERRORS,
    HashingReader,
    decompressed,
    decompression_error,
    read_chunks,
    sha256_of,
)
from rfbackup.progress import Reporter
from rfbackup.sources.postgres import restore as pg
from rfbackup.sources.postgres.roles import missing_roles_script
from rfbackup.storage import Repository, read_bytes
from rfbackup.storage.local import LocalRepository

STAMP = "%Y%m%d_%H%M%S"
MAX_IDENT = 63


@dataclass
class Located:
    repo: Repository
    entry: catalog.Entry

    @property
    def key(self) -> str:
        return self.entry.name

    @property
    def manifest(self) -> Manifest | None:
        return self.entry.manifest


def locate(settings: Settings, name: str, repo_url: str | None = None) -> Located:
    """A path to a file on disk, an ``s3://bucket/prefix/KEY`` URL, or a backup name (key or
    file name) in the configured repository."""
    path = Path(name)
    key = name
    if name.startswith("s3://"):
        bucket, _, full = name.removeprefix("s3://").partition("/")
        head, sep, tail = full.rpartition("postgres/")
        prefix, key = (head.rstrip("/"), sep + tail) if sep else full.rpartition("/")[::2]
        repo = settings.open_repository(f"s3://{bucket}/{prefix}".rstrip("/"))
    elif repo_url is None and path.is_file():
        repo = LocalRepository(path.parent)
        key = path.name
    elif repo_url is None and path.is_dir():
        raise NotFound(f"{name} is a directory, not a backup file")
    else:
        repo = settings.open_repository(repo_url)
    return Located(repo, catalog.find(repo, key, repository_lock(repo)[1]))


def roles_key(loc: Located) -> str:
    """The roles sidecar always sits beside its data object, wherever the pair was copied."""
    return loc.entry.object_keys()[1]


def identities_for(settings: Settings, loc: Located) -> list[Any]:
    """The age identities needed to read ``loc``, or [] when it is not encrypted."""
    encrypted = bool(loc.manifest and loc.manifest.encryption) or loc.key.endswith(AGE_SUFFIX)
    if not encrypted:
        return []
    path = settings.encryption.identity_file
    if path is None:
        raise ConfigError(
            f"{loc.key} is encrypted: set RFBACKUP_ENCRYPTION__IDENTITY_FILE to the age identity"
        )
    return settings.encryption.identities()


@contextmanager
def plaintext(loc: Located, raw: Any, identities: list[Any]) -> Iterator[IO[bytes]]:
    """The original dump bytes from a stored stream: decrypt (if needed), then decompress."""
    where = loc.repo.describe(loc.key)
    try:
        if identities:
            from rfbackup.encryption import decrypted

            with (
                decrypted(raw, identities, where) as clear,
                decompressed(_compression_of(loc), clear) as stream,
            ):
                yield stream
        else:
            with decompressed(_compression_of(loc), raw) as stream:
                yield stream
    except DECOMPRESSION_ERRORS as exc:
        raise decompression_error(exc, where) from None


def verify_stored(loc: Located, allow_unverified: bool, identities: list[Any]) -> None:
    """Refuse anything that is not provably the bytes we wrote, before any database is touched.

    For an encrypted backup, also prove the identity opens it."""
    entry, where = loc.entry, loc.repo.describe(loc.key)
    if entry.status in ("in-progress", "abandoned"):
        raise IntegrityError(f"{where} is an unfinished write, not a backup")
    if entry.status == "unreadable":  # not a manifest-less backup: never downgrade to that
        raise StorageError(f"{where}: {entry.problem}")
    if entry.status in ("missing-data", "bad-manifest", "damaged"):
        raise IntegrityError(f"{where}: {entry.problem}")
    if entry.manifest is None:
        if not allow_unverified:
            raise IntegrityError(
                f"{where} has no manifest, so it cannot be verified; "
                "re-run with --allow-unverified to restore it anyway"
            )
        _test_decompress(loc, identities)
        return
    m = entry.manifest
    with loc.repo.open(loc.key) as fh, Reporter("verifying sha256", m.data.stored_bytes) as p:
        digest, size = sha256_of(fh, p.advance)
    if digest != m.data.sha256 or size != m.data.stored_bytes:
        raise IntegrityError(
            f"{where} is corrupted: sha256 {digest[:16]}... does not match the manifest's "
            f"{m.data.sha256[:16]}..."
        )
    if m.roles.get("captured"):
        roles_data = read_bytes(loc.repo, roles_key(loc))
        if hashlib.sha256(roles_data).hexdigest() != m.roles["sha256"]:
            raise IntegrityError(f"{loc.repo.describe(roles_key(loc))} is corrupted")
    if identities:  # a wrong key must fail here, not half way into a restore
        with loc.repo.open(loc.key) as raw, plaintext(loc, raw, identities) as stream:
            stream.read(1)


def _compression_of(loc: Located) -> str | None:
    if loc.manifest is not None:
        return loc.manifest.compression
    parsed = BackupName.parse(loc.key)
    if parsed is not None:
        return parsed.compression
    if loc.key.endswith(".gz"):
        return "gzip"
    if loc.key.endswith(".zst"):
        return "zstd"
    return None


def _dump_format(loc: Located) -> str:
    if loc.manifest is not None:
        return str(loc.manifest.dump.get("format", "plain"))
    parsed = BackupName.parse(loc.key)
    return parsed.dump_format if parsed else "plain"


def _test_decompress(loc: Located, identities: list[Any]) -> None:
    """For files without a manifest: the whole stream must decompress (like ``gzip -t``)."""
    with loc.repo.open(loc.key) as raw, plaintext(loc, raw, identities) as stream:
        for _ in read_chunks(stream):
            pass


def _identifier(base: str, suffix: str) -> str:
    room = MAX_IDENT - len(suffix.encode())
    trimmed = base.encode()[:room].decode("utf-8", "ignore")
    return trimmed + suffix


@dataclass
class RestorePlan:
    backup: str
    host: str
    database: str
    replace: bool  # swap into place (True) or restore beside (--target-db)

    def question(self) -> str:
        if self.replace:
            return (
                f"Restore {self.backup} into database {self.database!r} on {self.host}? "
                "The current database will be kept under a dated name."
            )
        return f"Restore {self.backup} into a new database {self.database!r} on {self.host}?"


def restore_postgres(
    settings: Settings,
    name: str,
    *,
    target_db: str | None = None,
    confirm: Callable[[str], bool],
    allow_unverified: bool = False,
    jobs: int | None = None,
    repo_url: str | None = None,
) -> dict[str, Any]:
    t0 = time.monotonic()
    loc = locate(settings, name, repo_url)
    identities = identities_for(settings, loc)
    verify_stored(loc, allow_unverified, identities)
    m = loc.manifest
    base = settings.postgres_target()
    live = target_db or base.dbname or (m.database.get("name") if m else None)
    if not live:
        raise ConfigError("no target database: set PGDATABASE, DATABASE_URL or --target-db")
    plan = RestorePlan(loc.key, base.server, live, replace=target_db is None)
    if not confirm(plan.question()):
        raise Aborted("restore cancelled; nothing was changed")
    stamp = datetime.now(UTC).strftime(STAMP)
    admin = pg.admin_connection(base)
    try:
        exists = pg.database_exists(admin, live)
        if target_db is not None and exists:
            raise RestoreError(f"database {live!r} already exists; --target-db needs a new name")
        work = live if target_db is not None else _identifier(live, f"_restore_{stamp}")
        if pg.database_exists(admin, work):
            raise RestoreError(f"database {work!r} already exists")
        _create_missing_roles(loc, base, admin, identities)
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
            counts = _check_counts(loc, base, work)
            kept = None
            if target_db is None:
                kept = _identifier(live, f"_pre_restore_{stamp}") if exists else None
                pg.swap(admin, live, work, kept)
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
        "duration_seconds": round(time.monotonic() - t0, 3),
    }
    if kept:
        log.info("restored %s into %s; previous database kept as %s", loc.key, live, kept)
    else:
        log.info("restored %s into %s", loc.key, live)
    return result


def _create_missing_roles(
    loc: Located, base: PostgresTarget, admin: Any, identities: list[Any]
) -> None:
    m = loc.manifest
    if m is None or not m.roles.get("captured"):
        return
    data = read_bytes(loc.repo, roles_key(loc))
    if identities:
        import pyrage

        data = pyrage.decrypt(data, identities)
    todo, created = missing_roles_script(gzip.decompress(data).decode(), admin)
    if created:
        log.info("creating roles missing on this server: %s", ", ".join(created))
        pg.run_sql_script(base, admin.info.dbname, todo)


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
        with plaintext(loc, raw, identities) as stream:
            if _dump_format(loc) == "custom" and jobs > 1:
                _load_custom_parallel(stream, raw, base, dbname, jobs, tmp_dir, p.advance)
            else:
                reader = _Counting(stream, raw, p.advance)
                if _dump_format(loc) == "custom":
                    pg.load_custom(base, dbname, reader, None, 1, lambda n: None)
                else:
                    pg.load_plain(base, dbname, reader, lambda n: None)
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
    stream: IO[bytes],
    raw: HashingReader,
    base: PostgresTarget,
    dbname: str,
    jobs: int,
    tmp_parent: Path | None,
    advance: Callable[[int], None],
) -> None:
    """pg_restore --jobs needs a seekable file: decompress to a private temp file first."""
    tmp_dir = tempfile.mkdtemp(prefix="rfbackup-restore-", dir=tmp_parent)
    try:
        os.chmod(tmp_dir, 0o700)
        path = os.path.join(tmp_dir, "dump")
        with open(path, "wb") as out:
            seen = 0
            for chunk in read_chunks(stream):
                out.write(chunk)
                advance(raw.size - seen)
                seen = raw.size
        pg.load_custom(base, dbname, None, path, jobs, lambda n: None)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def _check_counts(loc: Located, base: PostgresTarget, dbname: str) -> dict[str, int]:
    counts = pg.restored_counts(base, dbname)
    m = loc.manifest
    if m is None:
        log.warning("%s has no manifest: row counts not checked", loc.key)
        return counts
    problems = pg.compare_counts(m.row_counts, counts)
    if problems:
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        raise RestoreError(
            f"restored data does not match the backup: {'; '.join(problems[:3])}{more}"
        )
    log.info("row counts match the manifest for all %d tables", len(counts))
    return counts
