"""The job runner: one backup of any source, all or nothing.

    prepare -> lock + lease -> remove abandoned partials -> unique keys
      -> source.stream() -> compress -> [age] -> sha256 -> repository
      -> sidecars -> before_commit -> manifest LAST (signed) -> [replica]

Any failure (the source's, a broken stream, a full disk, SIGINT/SIGTERM) aborts the writes and
deletes what was committed, so no data object and no manifest remain. A crash (kill -9) can
leave only a partial write (a hidden ``.partial`` file, or an unfinished multipart upload),
which is never listed as a backup and is removed by the next run.

:func:`run` is the whole job a command starts: pending fallback uploads, the backup, the
fallback when the primary repository fails, the replica copy, and one RunReport for metrics.
"""

from __future__ import annotations

import hashlib
import socket
import time
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rfbackup import __version__, interrupts
from rfbackup.engine.locks import component_job
from rfbackup.engine.source import Keys, Sidecar, Source
from rfbackup.errors import StorageError
from rfbackup.lease import ensure_held
from rfbackup.logs import log
from rfbackup.manifest import Manifest, StoredFile
from rfbackup.progress import Reporter, human_bytes
from rfbackup.report import Kind, RunReport, reporting
from rfbackup.storage import Repository, put_bytes

if TYPE_CHECKING:
    from rfbackup.config import Settings
    from rfbackup.pipeline import StoredStream


@dataclass
class BackupResult:
    manifest: Manifest
    stored_in: str
    pending_upload: bool = False
    replicated_to: str | None = None
    report: RunReport | None = None

    def to_dict(self) -> dict[str, object]:
        m = self.manifest
        return {
            "name": m.name,
            "component": m.component,
            "subject": m.subject,
            "status": m.status,
            "sha256": m.sha256,
            "size_bytes": m.size_bytes,
            "raw_bytes": m.data.raw_bytes,
            "duration_seconds": m.duration_seconds,
            "encrypted": bool(m.encryption),
            "repository": self.stored_in,
            "pending_upload": self.pending_upload,
            "replicated_to": self.replicated_to,
        }


def backup(settings: Settings, source: Source, repo: Repository) -> Manifest:
    """One backup of ``source`` into ``repo``; its manifest once committed."""
    from rfbackup.encryption import parse_recipients
    from rfbackup.signing import Signer

    recipients = settings.backup_recipients()
    age = parse_recipients(recipients)
    Signer.from_options(settings.signing)  # a bad key fails now, not after the copy
    source.prepare(repo)
    with component_job(repo, source.component, settings.locks):
        _remove_abandoned(repo, source)
        keys = _unused_keys(repo, source, bool(age))
        return _store(settings, repo, source, keys, age, recipients)


def _remove_abandoned(repo: Repository, source: Source) -> None:
    for obj in repo.list(include_partial=True):
        if obj.partial and source.owns(obj.key):
            log.warning("removing %s left by an interrupted run", repo.describe(obj.key))
            repo.discard_partial(obj.key)


def _unused_keys(repo: Repository, source: Source, encrypted: bool) -> Keys:
    """Keys have one-second resolution: wait for the next second rather than overwrite."""
    while True:
        at = datetime.now(UTC).replace(microsecond=0)
        keys = source.keys(at, encrypted, repo.layout)
        wanted = [keys.data, keys.manifest, *map(keys.sidecar, source.sidecar_suffixes)]
        if all(repo.stat(k) is None for k in wanted):
            return keys
        time.sleep(0.2)


def _store(
    settings: Settings,
    repo: Repository,
    source: Source,
    keys: Keys,
    age: list[Any],
    recipients: list[str],
) -> Manifest:
    started = datetime.now(UTC)
    t0 = time.monotonic()
    log.info(
        "backup %s of %s to %s started (%s level %d%s)",
        keys.data,
        source.describe(),
        repo.url,
        source.compression,
        source.level,
        ", age-encrypted" if age else "",
    )
    committed: list[str] = []
    try:
        stream = _stream_data(repo, source, keys.data, age)
        committed.append(keys.data)
        records = []
        for sidecar in source.sidecars():
            if sidecar.suffix not in source.sidecar_suffixes:  # its key was not kept free
                raise ValueError(f"{source.component}: undeclared sidecar {sidecar.suffix!r}")
            records.append(_store_sidecar(repo, keys, sidecar, age, committed))
        source.before_commit()
        manifest = Manifest(
            name=keys.data,
            component=source.component,
            environment=settings.env.value,
            subject=source.subject(),
            host=socket.gethostname(),
            tool_version=__version__,
            started_at=started.isoformat(),
            finished_at=datetime.now(UTC).isoformat(),
            duration_seconds=round(time.monotonic() - t0, 3),
            compression=source.compression,
            compression_level=source.level,
            data=StoredFile(keys.data, stream.sha256, stream.stored_bytes, stream.raw_bytes),
            encryption={"format": "age", "recipients": recipients} if age else {},
            sidecars=records,
            source=source.section(),
        )
        from rfbackup.signing import sign_manifest

        sign_manifest(settings, manifest)
        ensure_held()
        put_bytes(repo, keys.manifest, manifest.to_json())  # the commit point
    except BaseException:
        repo.delete(reversed(committed))
        raise
    extra = source.summary()
    log.info(
        "backup %s done: %s raw -> %s stored in %.1f s%s, sha256 %s",
        keys.data,
        human_bytes(stream.raw_bytes),
        human_bytes(stream.stored_bytes),
        manifest.duration_seconds,
        f", {extra}" if extra else "",
        stream.sha256[:16],
    )
    return manifest


def _stream_data(repo: Repository, source: Source, key: str, age: list[Any]) -> StoredStream:
    """The source's bytes through the stages into ``key``, committed; on any failure the
    partial write is aborted and the source's stream closed (its process stopped)."""
    from rfbackup.pipeline import StoredStream

    opened: StoredStream | None = None
    try:
        with closing(source.stream()) as chunks:
            # The source has started (a source may yield b"" as soon as it has, before any
            # data): only now is the partial write begun, so an interruption while the
            # source starts never finds a half-started source behind a partial file.
            first = next(chunks, None)
            with interrupts.deferred():  # the partial file exists only with its abort
                opened = StoredStream(
                    repo.writer(key), source.compression, source.level, source.threads, age
                )
            stream = opened
            with Reporter(source.progress_label, source.size_estimate) as progress:
                if first:
                    stream.write(first)
                    progress.advance(len(first))
                for chunk in chunks:
                    stream.write(chunk)
                    progress.advance(len(chunk))
        stream.commit()
        return stream
    except BaseException:
        if opened is not None:
            opened.abort()
        else:  # stopped while the writer was being made: whatever it began is ours
            repo.discard_partial(key)
        raise


def _store_sidecar(
    repo: Repository, keys: Keys, sidecar: Sidecar, age: list[Any], committed: list[str]
) -> dict[str, object]:
    """Encrypt like the data, store, remember for the rollback; the manifest's record."""
    if sidecar.data is None:
        what = sidecar.name.replace("_", " ")
        then = f"; {sidecar.consequence}" if sidecar.consequence else ""
        log.warning("%s not captured (%s)%s", what, sidecar.reason, then)
        return {"name": sidecar.name, "captured": False, "reason": sidecar.reason}
    data = sidecar.data
    if age:
        import pyrage

        data = pyrage.encrypt(data, age)
    key = keys.sidecar(sidecar.suffix)
    put_bytes(repo, key, data)
    committed.append(key)
    return {
        "name": sidecar.name,
        "captured": True,
        "key": key,
        "sha256": hashlib.sha256(data).hexdigest(),
        "stored_bytes": len(data),
    }


def run(settings: Settings, source: Source, kind: Kind = "backup") -> BackupResult:
    """The whole job: pending uploads, the backup, the fallback if needed, the replica,
    and its RunReport (delivered to metrics, success or failure)."""
    lineage = f"{settings.env.value}/{source.component}"
    with reporting(
        source.component, settings.env.value, kind, lineage, lambda r: deliver(settings, r)
    ) as current:
        result = _run(settings, source)
        m = result.manifest
        current.report.lineage = "/".join(p for p in (lineage, m.subject) if p)
        current.stored(m.data.key, m.data.raw_bytes, m.data.stored_bytes, m.sha256)
        result.report = current.report
    return result


def deliver(settings: Settings, report: RunReport) -> None:
    """Hand a finished run's report to the configured metrics delivery (if any)."""
    if settings.metrics.enabled:
        from rfbackup.ops.metrics import deliver as to_metrics

        to_metrics(report, settings.metrics)


def _run(settings: Settings, source: Source) -> BackupResult:
    from rfbackup.replication import replicate, upload_pending

    primary = settings.open_repository()
    fallback = settings.open_fallback()
    replica = settings.open_replica()
    if fallback is not None:
        try:
            upload_pending(fallback, primary, replica)
        except StorageError as exc:
            log.warning("pending backups stay in %s: %s", fallback.url, exc)
    try:
        manifest = backup(settings, source, primary)
    except StorageError as exc:
        if fallback is None:
            raise
        log.warning(
            "%s; writing the backup to the fallback folder %s instead (pending upload)",
            exc,
            fallback.url,
        )
        manifest = backup(settings, source, fallback)
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
