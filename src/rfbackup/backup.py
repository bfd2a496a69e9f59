"""Taking a PostgreSQL logical backup, all or nothing.

    lock -> pg_dump (snapshot) -> compress -> [age encrypt] -> sha256 -> repository
         -> roles -> manifest LAST

Any failure (pg_dump exit, broken stream, full disk, SIGINT/SIGTERM) aborts the writes, so
no data object and no manifest remain. A crash (kill -9) can leave only a partial write
(a hidden ``.partial`` file, or an unfinished multipart upload), which is never listed as a
backup and is removed by the next run.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import deflate

from rfbackup import __version__, interrupts
from rfbackup.config import LockOptions, PostgresTarget, Settings
from rfbackup.errors import ConfigError, StorageError
from rfbackup.lease import ensure_held, job
from rfbackup.locks import lock_path
from rfbackup.logs import log
from rfbackup.manifest import Manifest, StoredFile
from rfbackup.naming import BackupName
from rfbackup.pipeline import StoredStream
from rfbackup.progress import Reporter, human_bytes
from rfbackup.signing import Signer, sign_manifest
from rfbackup.sources.postgres import dbprops, roles, sqlguard
from rfbackup.sources.postgres.dump import PostgresDump
from rfbackup.storage import Repository, put_bytes

COMPONENT = "postgres"


def repository_lock(
    repo: Repository, component: str = COMPONENT, locks: LockOptions | None = None
) -> tuple[str, Path]:
    """What the lock guards (for the "already running" message) and the lock file."""
    directory = (locks or LockOptions()).directory()
    return f"a {component} job on {repo.url}", lock_path(repo.url, component, directory)


def backup_postgres(
    settings: Settings,
    dump_format: str = "plain",
    compression: str | None = None,
    repo: Repository | None = None,
) -> Manifest:
    policy = settings.postgres
    compression = compression or policy.compression
    level = policy.gzip_level if compression == "gzip" else policy.zstd_level
    target = settings.postgres_target()
    if not target.dbname:
        raise ConfigError("no database to back up: set PGDATABASE or DATABASE_URL")
    recipients = settings.backup_recipients()
    Signer.from_options(settings.signing)  # a bad key fails now, not after the dump
    repo = repo or settings.open_repository()
    what, path = repository_lock(repo, COMPONENT, settings.locks)
    with job(repo, COMPONENT, what, path, settings.locks.lease_seconds):
        _remove_abandoned(repo)
        name = _unused_name(repo, settings, dump_format, compression, bool(recipients))
        return _run(settings, repo, name, dump_format, compression, level, recipients)


def _unused_name(
    repo: Repository, settings: Settings, fmt: str, compression: str, encrypted: bool
) -> BackupName:
    """Names have one-second resolution: wait for the next second rather than overwrite."""
    while True:
        name = BackupName.new(
            settings.env, fmt, compression, datetime.now(UTC), encrypted, repo.layout
        )
        keys = (name.key, name.manifest_key, name.roles_key, name.dbprops_key)
        if all(repo.stat(k) is None for k in keys):
            return name
        time.sleep(0.2)


def _remove_abandoned(repo: Repository) -> None:
    for obj in repo.list(include_partial=True):
        if obj.partial and BackupName.parse(obj.key):
            log.warning("removing %s left by an interrupted run", repo.describe(obj.key))
            repo.discard_partial(obj.key)


def _run(
    settings: Settings,
    repo: Repository,
    name: BackupName,
    fmt: str,
    compression: str,
    level: int,
    recipients: list[str],
) -> Manifest:
    from rfbackup.encryption import parse_recipients

    target = settings.postgres_target()
    age = parse_recipients(recipients)
    started = datetime.now(UTC)
    t0 = time.monotonic()
    log.info(
        "backup %s of %s to %s started (%s, %s level %d%s)",
        name.key,
        target.display,
        repo.url,
        fmt,
        compression,
        level,
        ", age-encrypted" if age else "",
    )
    committed: list[str] = []
    try:
        with PostgresDump(target, fmt) as dump:
            threads = settings.postgres.compression_threads
            opened: StoredStream | None = None
            try:
                with interrupts.deferred():  # the partial file exists only with its abort
                    opened = StoredStream(repo.writer(name.key), compression, level, threads, age)
                stream = opened
                restrict_key = None
                with Reporter(f"dumping {dump.info.database['name']}", dump.size_estimate) as p:
                    for chunk in dump.chunks():
                        if stream.raw_bytes == 0 and fmt == "plain":
                            restrict_key = sqlguard.restrict_key(bytes(chunk[:4096]))
                        stream.write(chunk)
                        p.advance(len(chunk))
                info = dump.finish()
                stream.commit()
            except BaseException:
                if opened is not None:
                    opened.abort()
                else:  # stopped while the writer was being made: whatever it began is ours
                    repo.discard_partial(name.key)
                raise
            committed.append(name.key)
        roles_record = _store_roles(repo, name, target, info.database["name"], age, committed)
        props_record = _store_db_properties(
            repo, name, target, info.database["name"], age, committed
        )
        manifest = Manifest(
            name=name.key,
            component=COMPONENT,
            environment=settings.env.value,
            tool_version=__version__,
            started_at=started.isoformat(),
            finished_at=datetime.now(UTC).isoformat(),
            duration_seconds=round(time.monotonic() - t0, 3),
            compression=compression,
            compression_level=level,
            data=StoredFile(name.key, stream.sha256, stream.stored_bytes, stream.raw_bytes),
            database=info.database,
            dump={
                "format": fmt,
                "pg_dump_version": info.pg_dump_version,
                "snapshot": info.snapshot,
                **({"restrict_key": restrict_key} if restrict_key else {}),
            },
            row_counts=info.row_counts,
            checks=info.checks,
            db_properties=props_record,
            roles=roles_record,
            encryption={"format": "age", "recipients": recipients} if age else {},
        )
        sign_manifest(settings, manifest)
        ensure_held()
        put_bytes(repo, name.manifest_key, manifest.to_json())  # the commit point
    except BaseException:
        repo.delete(committed)
        raise
    log.info(
        "backup %s done: %s raw -> %s stored in %.1f s, %d tables, sha256 %s",
        name.key,
        human_bytes(stream.raw_bytes),
        human_bytes(stream.stored_bytes),
        manifest.duration_seconds,
        len(info.row_counts),
        stream.sha256[:16],
    )
    return manifest


def _store_roles(
    repo: Repository,
    name: BackupName,
    target: PostgresTarget,
    dbname: str,
    age: list[Any],
    committed: list[str],
) -> dict[str, object]:
    script, reason = roles.capture(target, dbname)
    if script is None:
        log.warning("roles not captured (%s); restore onto a new server needs them created", reason)
        return {"captured": False, "reason": reason}
    return _store_sidecar(
        repo, name.roles_key, bytes(deflate.gzip_compress(script, 6)), age, committed
    )


def _store_db_properties(
    repo: Repository,
    name: BackupName,
    target: PostgresTarget,
    dbname: str,
    age: list[Any],
    committed: list[str],
) -> dict[str, object]:
    """The database's owner, ACL, settings, comment and connection limit, as a sidecar
    (encrypted like the data: settings may hold values worth hiding)."""
    props, reason = dbprops.capture(target.with_dbname(dbname))
    if props is None:
        log.warning("database properties not captured (%s); a restore cannot apply them", reason)
        return {"captured": False, "reason": reason}
    data = json.dumps(props, indent=2, sort_keys=True).encode() + b"\n"
    return _store_sidecar(repo, name.dbprops_key, data, age, committed)


def _store_sidecar(
    repo: Repository, key: str, data: bytes, age: list[Any], committed: list[str]
) -> dict[str, object]:
    """Encrypt like the data, store, remember for the rollback; the manifest's record of it."""
    if age:
        import pyrage

        data = pyrage.encrypt(data, age)
    put_bytes(repo, key, data)
    committed.append(key)
    return {
        "captured": True,
        "key": key,
        "sha256": hashlib.sha256(data).hexdigest(),
        "stored_bytes": len(data),
    }


@dataclass
class BackupResult:
    manifest: Manifest
    stored_in: str
    pending_upload: bool = False
    replicated_to: str | None = None

    def to_dict(self) -> dict[str, object]:
        m = self.manifest
        return {
            "name": m.name,
            "status": m.status,
            "sha256": m.sha256,
            "size_bytes": m.size_bytes,
            "raw_bytes": m.data.raw_bytes,
            "duration_seconds": m.duration_seconds,
            "tables": len(m.row_counts),
            "encrypted": bool(m.encryption),
            "repository": self.stored_in,
            "pending_upload": self.pending_upload,
            "replicated_to": self.replicated_to,
        }


def run_postgres_backup(
    settings: Settings, dump_format: str = "plain", compression: str | None = None
) -> BackupResult:
    """The whole job: pending uploads, the backup, the fallback if needed, the replica."""
    from rfbackup.replication import replicate, upload_pending

    primary = settings.open_repository()
    fallback = settings.open_fallback()
    replica = settings.open_replica()
    if fallback is not None:
        try:
            upload_pending(fallback, primary)
        except StorageError as exc:
            log.warning("pending backups stay in %s: %s", fallback.url, exc)
    try:
        manifest = backup_postgres(settings, dump_format, compression, repo=primary)
    except StorageError as exc:
        if fallback is None:
            raise
        log.warning(
            "%s; writing the backup to the fallback folder %s instead (pending upload)",
            exc,
            fallback.url,
        )
        manifest = backup_postgres(settings, dump_format, compression, repo=fallback)
        return BackupResult(manifest, fallback.url, pending_upload=True)
    result = BackupResult(manifest, primary.url)
    if replica is not None:
        try:
            replicate(primary, replica, manifest.name)
            result.replicated_to = replica.url
        except (StorageError, OSError) as exc:
            message = (
                f"backup {manifest.name} is stored in {primary.url}, but copying it to "
                f"the replica {replica.url} failed: {exc}"
            )
            if settings.replica.required:
                raise StorageError(message) from None
            log.warning("%s", message)
    return result
