"""The Source protocol: what a component supplies to the job runner (``engine.job``).

A source knows how to produce the bytes of one backup and what to record about them. The
runner owns everything else: locking, naming collisions, compression, encryption, hashing,
the repository, sidecar storage, the manifest (written last), signatures, rollback, the
fallback and replica copies, and the RunReport.

``stream()`` may be called more than once (a retry into the fallback repository takes a new
snapshot); the sections and sidecars describe the most recent completed stream. A stream is
complete only when its generator returns: a source that finds a problem after the last
chunk (a failed exit status, a checksum) raises instead of returning, and nothing is kept.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from rfbackup.naming import AGE_SUFFIX, MANIFEST_SUFFIX

if TYPE_CHECKING:
    from rfbackup.storage import Repository

EXTENSIONS = {"gzip": ".gz", "zstd": ".zst", "none": ""}


@dataclass(frozen=True)
class Keys:
    """Where one backup's objects go: ``stem + ext`` (+ ``.age``) for the data, ``stem +
    suffix`` (+ ``.age``) for each sidecar, the data key + ``.manifest.json`` for the manifest."""

    stem: str
    ext: str
    encrypted: bool

    @property
    def data(self) -> str:
        return self.stem + self.ext + (AGE_SUFFIX if self.encrypted else "")

    @property
    def manifest(self) -> str:
        return self.data + MANIFEST_SUFFIX

    def sidecar(self, suffix: str) -> str:
        return self.stem + suffix + (AGE_SUFFIX if self.encrypted else "")


@dataclass(frozen=True)
class Sidecar:
    """A small object stored beside the data, encrypted like it. ``data`` None means it
    could not be captured (``reason`` says why); the manifest records that too."""

    name: str  # its record's name in the manifest: "roles", "db_properties"...
    suffix: str  # one of the source's ``sidecar_suffixes``
    data: bytes | None
    reason: str = ""  # why it was not captured (recorded in the manifest)
    consequence: str = ""  # what that means for a restore (logged)


class Source(Protocol):
    component: str  # postgres, postgres-base, redis, artifacts, config...
    compression: str  # gzip, zstd or none
    level: int
    threads: int
    sidecar_suffixes: tuple[str, ...]  # every sidecar suffix a backup of this source may use
    # Set by stream() once known (before or with its first chunk): the progress bar's
    # label and its expected total.
    progress_label: str
    size_estimate: int | None

    def prepare(self, repo: Repository) -> None:
        """Checks before the lock is taken: fail fast, before anything is written."""

    def subject(self) -> str:
        """What this source backs up (a database, a cluster, an instance): with the
        environment and the component, the lineage retention keeps the newest of."""
        ...

    def describe(self) -> str:
        """What is being backed up, for log lines (never a secret)."""
        ...

    def keys(self, at: datetime, encrypted: bool, layout: str) -> Keys:
        """The keys of a backup started at ``at`` in a repository of ``layout``."""
        ...

    def owns(self, key: str) -> bool:
        """Is ``key`` one of this source's data objects (for removing abandoned partials)?"""
        ...

    def stream(self) -> Generator[bytes]:
        """The bytes to store, in chunks. Raising at any point fails the backup. A source
        whose start is slow (a connection, a child process) may first yield ``b""`` once it
        has started: the engine opens the partial write only after the first chunk."""
        ...

    def sidecars(self) -> list[Sidecar]:
        """After a complete stream: the sidecars to store with it."""
        ...

    def before_commit(self) -> None:
        """After the data and sidecars are stored, before the manifest: a last check (a
        base backup waits for its WAL here). Raising deletes what was stored."""

    def section(self) -> dict[str, Any]:
        """After a complete stream: the manifest's ``source`` section."""
        ...

    def summary(self) -> str:
        """After a complete stream: a few words for the "done" log line."""
        ...


class SourceBase:
    """Defaults for the optional parts of :class:`Source`."""

    compression = "zstd"
    level = 3
    threads = 2
    sidecar_suffixes: tuple[str, ...] = ()
    progress_label = "backing up"
    size_estimate: int | None = None

    def prepare(self, repo: Repository) -> None:
        return None

    def sidecars(self) -> list[Sidecar]:
        return []

    def before_commit(self) -> None:
        return None

    def summary(self) -> str:
        return ""
