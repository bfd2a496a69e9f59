"""The WAL archive: the ``wal/`` prefix of a repository.

Layout::

    wal/archive.json                                  which cluster this archive belongs to
    wal/0000000100000000/000000010000000000000003-<sha256>.zst[.age]
    wal/history/00000002.history-<sha256>.zst[.age]

The sha256 of the original file is part of the key, like pgBackRest's archive names: a
second push of the same name finds out from one listing whether the archived copy is
identical (success) or different (refused), and a fetch verifies what it hands PostgreSQL.
Each file is compressed with zstd in one frame and, when recipients are set, age-encrypted.

This module is on the path of every ``archive_command`` call: it imports only the stdlib,
the local storage backend; zstandard, pyrage and boto3 load only when needed.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rfbackup.errors import (
    ConfigError,
    IntegrityError,
    NotFound,
    PartialExists,
    StorageError,
)
from rfbackup.pitr.walnames import DEFAULT_SEGMENT_SIZE, SEGMENT_RE, folder_of, is_wal_file
from rfbackup.pitr.walpack import HEADER, Packed, pack, read_header
from rfbackup.storage.base import ObjectInfo, Repository, read_bytes

PREFIX = "wal/"
INFO_KEY = "wal/archive.json"
INFO_FORMAT = "rfbackup-wal-archive/1"
EXT = ".zst"
AGE = ".age"


@dataclass(frozen=True)
class ArchiveInfo:
    system_identifier: str
    wal_segment_size: int
    created_at: str
    format: str = INFO_FORMAT

    def to_json(self) -> bytes:
        return (json.dumps(asdict(self), indent=2, sort_keys=True) + "\n").encode()


@dataclass(frozen=True)
class Archived:
    """One archived file, as its key tells it."""

    name: str  # 000000010000000000000003, 00000002.history, ...
    sha256: str
    key: str
    size: int
    modified: datetime
    encrypted: bool


def key_for(name: str, sha256: str, encrypted: bool) -> str:
    return f"{PREFIX}{folder_of(name)}/{name}-{sha256}{EXT}{AGE if encrypted else ''}"


def parse_key(obj: ObjectInfo) -> Archived | None:
    base = obj.key.rpartition("/")[2]
    encrypted = base.endswith(AGE)
    stem = base.removesuffix(AGE)
    if not stem.endswith(EXT):
        return None
    name, _, sha = stem.removesuffix(EXT).partition("-")
    if len(sha) != 64 or not is_wal_file(name):
        return None
    return Archived(name, sha, obj.key, obj.size, obj.modified, encrypted)


class WalArchive:
    """Push and fetch single WAL files. ``recipients`` (pyrage objects) encrypt pushes;
    ``identities`` decrypt fetches."""

    def __init__(
        self,
        repo: Repository,
        level: int = 3,
        recipients: list[Any] | None = None,
        identities: list[Any] | None = None,
        replica: Repository | None = None,
        replica_required: bool = True,
    ) -> None:
        self.repo = repo
        self.level = level
        self.recipients = recipients or []
        self.identities = identities or []
        self.replica = replica  # pushes reach it too, before they count as archived
        self.replica_required = replica_required
        self._info: ArchiveInfo | None = None
        self._replica_has_info = False

    # -- the archive's identity -------------------------------------------------------------

    def info(self) -> ArchiveInfo | None:
        if self._info is None:
            try:
                doc = json.loads(read_bytes(self.repo, INFO_KEY))
            except NotFound:
                return None
            except ValueError as exc:
                raise IntegrityError(
                    f"{self.repo.describe(INFO_KEY)} is unreadable: {exc}"
                ) from None
            if doc.get("format") != INFO_FORMAT:
                raise IntegrityError(f"{self.repo.describe(INFO_KEY)} is not an rfbackup archive")
            self._info = ArchiveInfo(**doc)
        return self._info

    def claim(
        self, system_identifier: int, segment_size: int, exclusive: bool = False
    ) -> ArchiveInfo:
        """The archive's identity, recording this cluster's on first use; refuses a cluster
        whose system identifier differs from the one the archive belongs to.

        ``exclusive``: as for push(), a partial identity left by a killed first push is
        removed and the write retried, instead of failing every retry PostgreSQL makes."""
        info = self.info()
        if info is None:
            new = ArchiveInfo(str(system_identifier), segment_size, datetime.now(UTC).isoformat())
            try:
                self.repo.put(INFO_KEY, new.to_json())
            except StorageError as exc:
                self._info = None  # lost a race with another first push: read theirs
                if self.info() is None:
                    if not exclusive and isinstance(exc, PartialExists):
                        raise StorageError(
                            f"{exc}; if no wal-push is running, a killed first push left it: "
                            "remove it (a wal-push of a segment PostgreSQL marked ready "
                            "removes it by itself)"
                        ) from None
                    if not exclusive:
                        raise
                    self.repo.discard_partial(INFO_KEY)
                    self.repo.put(INFO_KEY, new.to_json())
            info = self.info() or new
        if info.system_identifier != str(system_identifier):
            raise IntegrityError(
                f"WAL from system {system_identifier} refused: the archive at "
                f"{self.repo.url} belongs to system {info.system_identifier} "
                "(another cluster; give each cluster its own repository)"
            )
        if info.wal_segment_size != segment_size:
            raise IntegrityError(
                f"WAL segment size {segment_size} differs from the archive's "
                f"{info.wal_segment_size}"
            )
        return info

    # -- finding --------------------------------------------------------------------------

    def copies(self, name: str) -> list[Archived]:
        """The committed archived copies of ``name`` (normally zero or one)."""
        prefix = f"{PREFIX}{folder_of(name)}/{name}-"
        found = []
        for obj in self.repo.list(prefix):
            entry = parse_key(obj)
            if entry is not None and entry.name == name:
                found.append(entry)
        return found

    def all(self) -> Iterator[Archived]:
        """Every archived file, in key order."""
        for obj in self.repo.list(PREFIX):
            entry = parse_key(obj)
            if entry is not None:
                yield entry

    # -- push and fetch -------------------------------------------------------------------

    def push(self, path: Path, exclusive: bool = False) -> bool:
        """Archive one file: pack it (:func:`rfbackup.pitr.walpack.pack`), then store it."""
        return self.store(pack(path, self.level, self.recipients), exclusive)

    def store(self, packed: Packed, exclusive: bool = False) -> bool:
        """Store a packed file. True if stored, False if an identical copy was already there.

        ``exclusive``: the caller is the only writer for this cluster (the pusher holds its
        lock), so a partial copy of the same content left by a killed writer is removed and
        the store retried once, instead of failing until someone cleans up.

        Raises IntegrityError for different content under the same name, or a segment from
        another cluster."""
        name, sha = packed.name, packed.sha256
        if packed.header is not None:
            self.claim(packed.header.system_identifier, packed.header.segment_size)
        for copy in self.copies(name):
            if copy.sha256 == sha:
                self._to_replica(copy.key)  # a retry after the replica failed
                return False
            raise IntegrityError(
                f"{name} is already archived with different content "
                f"({self.repo.describe(copy.key)}); refusing to replace it. Two clusters "
                "archiving into one repository, or a cluster restored without a new timeline?"
            )
        key = key_for(name, sha, packed.encrypted)
        try:
            self.repo.put(key, packed.blob)
        except StorageError:
            if not exclusive:
                raise
            self.repo.discard_partial(key)
            self.repo.put(key, packed.blob)
        self._to_replica(key)
        return True

    def _to_replica(self, key: str) -> None:
        """Copy an archived file (and, once, the archive's identity) to the replica. With
        the replica required, a failed copy fails the push: PostgreSQL keeps the segment
        and retries, and the retry finds the primary's copy and copies only."""
        if self.replica is None:
            return
        from rfbackup.replication import copy_object

        try:
            wanted = [key] if self._replica_has_info else [INFO_KEY, key]
            for k in wanted:
                if self.replica.stat(k) is None:
                    copy_object(self.repo, self.replica, k)
            self._replica_has_info = True
        except (StorageError, OSError) as exc:
            message = f"{key} is archived in {self.repo.url}, but not in the replica: {exc}"
            if self.replica_required:
                raise StorageError(message) from None
            from rfbackup.logs import log

            log.warning("%s (rfbackup replica sync copies it later)", message)

    def prepare(self, path: Path, exclusive: bool = False) -> None:
        """Check a segment's cluster against the archive before parallel pushes begin (the
        first push of a new archive records its identity, once; ``exclusive`` as in claim)."""
        if not SEGMENT_RE.match(path.name):
            return
        try:
            with open(path, "rb") as fh:
                head = fh.read(HEADER.size)
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror}") from None
        header = read_header(head, str(path))
        self.claim(header.system_identifier, header.segment_size, exclusive)

    def segment_size(self) -> int:
        info = self.info()
        return info.wal_segment_size if info else DEFAULT_SEGMENT_SIZE

    def fetch(self, name: str, dest: Path) -> Archived:
        """Write the original bytes of ``name`` to ``dest`` (atomically), verified by sha256.

        Raises NotFound when ``name`` is not archived."""
        copies = self.copies(name)
        if not copies:
            raise NotFound(f"{name} is not in the archive at {self.repo.url}")
        if len({c.sha256 for c in copies}) > 1:
            raise IntegrityError(f"{name} is archived twice with different content")
        copy = copies[0]
        data = self.read(copy)
        tmp = dest.with_name(f".{dest.name}.rfbackup-tmp")
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
            os.replace(tmp, dest)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StorageError(f"cannot write {dest}: {exc.strerror}") from None
        return copy

    def read(self, copy: Archived) -> bytes:
        """The original bytes of an archived file, verified against the sha256 in its key."""
        where = self.repo.describe(copy.key)
        blob = read_bytes(self.repo, copy.key)
        if copy.encrypted:
            if not self.identities:
                raise ConfigError(
                    f"{copy.name} is encrypted: set RFBACKUP_ENCRYPTION__IDENTITY_FILE"
                )
            import pyrage

            try:
                blob = pyrage.decrypt(blob, self.identities)
            except Exception as exc:
                raise IntegrityError(f"{where}: cannot decrypt ({exc})") from None
        import zstandard

        try:
            data = zstandard.ZstdDecompressor().decompress(blob)
        except zstandard.ZstdError as exc:
            raise IntegrityError(f"{where}: corrupt ({exc})") from None
        if hashlib.sha256(data).hexdigest() != copy.sha256:
            raise IntegrityError(f"{where}: content does not match its sha256")
        return data
