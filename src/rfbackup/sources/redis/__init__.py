"""The Redis source: RDB snapshots fetched over replication, checked before they count.

Shaped for the engine's Source protocol (issue 9): a component name, a lineage, a key
scheme, ``stream()`` (the bytes to store), a manifest section, the counts verification
compares, and a restore entry point that takes a readable plaintext stream. The job runner
and the ``rfbackup backup redis`` command land with the engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, BinaryIO

from rfbackup.config import RedisTarget
from rfbackup.errors import IntegrityError
from rfbackup.sources.redis.check import RdbCheck, RdbSummary, checked, compare_counts
from rfbackup.sources.redis.connection import info, keyspace
from rfbackup.sources.redis.fetch import fetch


class RedisSource:
    """One snapshot of one Redis instance. ``stream()`` may be consumed once."""

    component = "redis"

    def __init__(
        self,
        target: RedisTarget,
        *,
        chunk_size: int = 1 << 20,
        timeout: float = 300.0,
        fallback: bool = True,
    ) -> None:
        self.target = target
        self.chunk_size = chunk_size
        self.timeout = timeout
        self.fallback = fallback
        self.summary: RdbSummary | None = None
        self._section: dict[str, Any] | None = None

    @property
    def lineage(self) -> str:
        """The instance (host:port/databases), never the password."""
        return self.target.lineage

    def key(self, when: datetime) -> str:
        return f"redis/{when:%Y%m%d_%H%M%S}.rdb"

    def stream(self) -> Iterator[bytes]:
        """The RDB bytes. Raises (after the last chunk) when the snapshot fails its check:
        a consumer must treat the stream as complete only when this generator returns."""
        before = info(self.target, "server", "memory", "persistence", "keyspace")
        at_fetch = keyspace(before)
        got = fetch(
            self.target, chunk_size=self.chunk_size, timeout=self.timeout, fallback=self.fallback
        )
        check = RdbCheck("the Redis snapshot")
        yield from checked(got.chunks, check)
        summary = check.finish()
        problems, figures = compare_counts(summary.keys, at_fetch)
        if problems:
            raise IntegrityError(
                "the Redis snapshot failed its check: key counts differ beyond the "
                "tolerance: " + "; ".join(problems)
            )
        after = info(self.target, "stats")
        self.summary = summary
        self._section = {
            "method": got.method,
            "refused": got.refused,
            "instance": self.lineage,
            "redis_version": before.get("redis_version"),
            "rdb_version": summary.rdb_version,
            "rdb_bytes": summary.size,
            "crc64": summary.crc64,
            "used_memory": before.get("used_memory"),
            "aof_enabled": bool(before.get("aof_enabled")),
            "keys": {str(db): n for db, n in summary.keys.items()},
            "expires": {str(db): n for db, n in summary.expires.items()},
            "key_counts": figures,  # per db: the snapshot's count and INFO keyspace's
            "latest_fork_usec": after.get("latest_fork_usec"),
        }

    def manifest_section(self) -> dict[str, Any]:
        if self._section is None:
            raise RuntimeError("manifest_section() before stream() completed")
        return self._section

    def counts(self) -> dict[str, int]:
        """Keys per database in the snapshot, the figures a restore verifies."""
        if self.summary is None:
            raise RuntimeError("counts() before stream() completed")
        return {str(db): n for db, n in self.summary.keys.items()}

    def restore(self, plaintext: BinaryIO, **options: Any) -> Any:
        """Restore from a readable plaintext RDB stream: ``files=`` (a
        :class:`restore.LocalServer`) for a Redis whose files we control, otherwise into
        ``self.target`` by DUMP/RESTORE (options of :func:`restore.restore_remote`)."""
        from rfbackup.sources.redis import remote, restore

        files = options.pop("files", None)
        if files is not None:
            return restore.restore_files(plaintext, files, **options)
        return remote.restore_remote(plaintext, self.target, **options)
