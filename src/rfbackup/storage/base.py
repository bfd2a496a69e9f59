"""The repository interface every backend implements, kept deliberately small.

A repository stores immutable objects under keys (``backup_20250120_143000.sql.gz``,
``postgres/20250120_143000.sql.gz``...). An object becomes visible only when its writer
commits, so a reader never sees half an object under its final key.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, BinaryIO, Protocol

if TYPE_CHECKING:
    from rfbackup.storage.objectlock import Protection, Retention, RetentionPolicy


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    modified: datetime
    partial: bool = False  # an upload or write still in progress (or abandoned by a crash)


class ObjectWriter(Protocol):
    """A stream being written. Nothing is visible until :meth:`commit`."""

    def write(self, data: bytes | bytearray | memoryview) -> int: ...

    def commit(self) -> None: ...

    def abort(self) -> None: ...


class Repository(Protocol):
    url: str
    layout: str  # how backups are named here: "flat" (local folder) or "component" (S3)

    def writer(self, key: str) -> ObjectWriter:
        """Start writing ``key``; commit makes it visible atomically, abort removes all trace."""
        ...

    def put(self, key: str, data: bytes) -> None:
        """Store a small object (a manifest) atomically; never overwrites."""
        ...

    def open(self, key: str) -> BinaryIO:
        """A readable binary stream of a committed object. Raises NotFound."""
        ...

    def list(self, prefix: str = "", include_partial: bool = False) -> Iterator[ObjectInfo]:
        """Objects whose keys start with ``prefix``, in key order."""
        ...

    def stat(self, key: str) -> ObjectInfo | None: ...

    def delete(self, keys: Iterable[str]) -> None:
        """Delete committed objects; missing keys are ignored."""
        ...

    def discard_partial(self, key: str) -> None:
        """Remove what an abandoned (crashed) write of ``key`` left behind."""
        ...

    def describe(self, key: str) -> str:
        """Where ``key`` lives, for messages: a path or an s3:// URL."""
        ...

    def read_tagged(self, key: str) -> tuple[bytes, str] | None:
        """A small object and its version tag (S3 ETag, local sha256), or None if absent."""
        ...

    def put_conditional(self, key: str, data: bytes, if_match: str | None) -> str | None:
        """Write ``key`` only if it is absent (``if_match`` None) or still at version
        ``if_match``: the new tag, or None when the condition did not hold. For leases."""
        ...

    # Object Lock (storage/objectlock.py). Every object written gets the retention of
    # ``retention_policy()`` by its key; a local repository has none and answers None/0.

    def protection(self) -> Protection | None:
        """The bucket's versioning and Object Lock; None where there are no such things."""
        ...

    def retention_policy(self) -> RetentionPolicy | None: ...

    def object_retention(self, key: str) -> Retention | None:
        """The lock on the current version of ``key``, or None."""
        ...

    def locked_until(self, key: str, now: datetime) -> Retention | None:
        """The longest lock any version of ``key`` still holds at ``now``, or None."""
        ...

    def extend_retention(self, key: str, retention: Retention) -> int:
        """Lengthen (never shorten) the locks of ``key``'s versions; how many changed."""
        ...


def put_bytes(repo: Repository, key: str, data: bytes) -> None:
    """Store a small object (a manifest) atomically."""
    repo.put(key, data)


def read_bytes(repo: Repository, key: str) -> bytes:
    with repo.open(key) as fh:
        return fh.read()
