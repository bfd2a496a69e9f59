"""The Redis source: RDB snapshots fetched over replication, checked before they count.

An engine source (``engine.source.Source``): ``rfbackup backup redis`` runs it through the
job runner (lock, unique key, compress / age / sha256, repository, manifest LAST, fallback,
replica, RunReport). Keys: ``redis/YYYYMMDD_HHMMSS.rdb.zst`` (``.gz`` with gzip, ``.age``
when encrypted). Restores take the verified plaintext stream (:mod:`service`).
"""

from __future__ import annotations

import atexit
import secrets
from collections.abc import Generator
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any, BinaryIO

from rfbackup.engine.registry import Keep, register_retention
from rfbackup.engine.source import EXTENSIONS, Keys, SourceBase
from rfbackup.errors import ConfigError, IntegrityError
from rfbackup.sources.redis.check import RdbCheck, RdbSummary, checked, compare_counts
from rfbackup.sources.redis.connection import info, keyspace
from rfbackup.sources.redis.fetch import fetch

if TYPE_CHECKING:
    from rfbackup.config import Settings
    from rfbackup.sandbox.redis import ThrowawayRedis
    from rfbackup.sources.redis.target import RedisTarget
    from rfbackup.storage import Repository

COMPONENT = "redis"
PREFIX = "redis/"

register_retention(COMPONENT, lambda s: Keep(s.redis.keep_days, s.redis.keep_min))


class RedisSource(SourceBase):
    """One snapshot of one Redis instance per ``stream()``."""

    component = COMPONENT

    def __init__(
        self,
        target: RedisTarget,
        *,
        compression: str = "zstd",
        level: int = 1,
        threads: int = 2,
        chunk_size: int = 1 << 20,
        timeout: float = 300.0,
        fallback: bool = True,
        verify_load: bool = False,
    ) -> None:
        self.target = target
        self.compression = compression
        self.level = level
        self.threads = threads
        self.chunk_size = chunk_size
        self.timeout = timeout
        self.fallback = fallback
        self.verify_load = verify_load
        self.progress_label = f"fetching the RDB of {target.display}"
        self.rdb: RdbSummary | None = None
        self._section: dict[str, Any] | None = None
        self._scratch: ThrowawayRedis | None = None  # --verify-load: the copy to load

    @classmethod
    def from_settings(cls, settings: Settings, verify_load: bool = False) -> RedisSource:
        p = settings.redis
        return cls(
            settings.redis_target(),
            compression=p.compression,
            level=p.gzip_level if p.compression == "gzip" else p.zstd_level,
            threads=p.compression_threads,
            timeout=p.fetch_timeout_seconds,
            fallback=p.bgsave_fallback,
            verify_load=verify_load,
        )

    def prepare(self, repo: Repository) -> None:
        """``--verify-load`` needs a redis-server here: say so before anything is fetched."""
        if self.verify_load:
            import shutil

            from rfbackup.sandbox.redis import REDIS_SERVER

            if shutil.which(REDIS_SERVER) is None:
                raise ConfigError(
                    f"--verify-load needs {REDIS_SERVER} on this machine (it is not in the "
                    "rfbackup image): install redis-server, or back up without --verify-load"
                )

    @property
    def lineage(self) -> str:
        """The instance (host:port/databases), never the password."""
        return self.target.lineage

    def subject(self) -> str:
        return self.target.lineage

    def describe(self) -> str:
        return f"redis {self.target.display}"

    def keys(self, at: datetime, encrypted: bool, layout: str) -> Keys:
        return Keys(f"{PREFIX}{at:%Y%m%d_%H%M%S}", ".rdb" + EXTENSIONS[self.compression], encrypted)

    def owns(self, key: str) -> bool:
        return key.startswith(PREFIX)

    def stream(self) -> Generator[bytes]:
        """The RDB bytes. Raises (after the last chunk) when the snapshot fails its check:
        a consumer must treat the stream as complete only when this generator returns."""
        self.rdb, self._section = None, None
        self._drop_scratch()
        before = info(self.target, "server", "memory", "persistence", "keyspace")
        at_fetch = keyspace(before)
        self.size_estimate = None
        got = fetch(
            self.target, chunk_size=self.chunk_size, timeout=self.timeout, fallback=self.fallback
        )
        check = RdbCheck("the Redis snapshot")
        try:
            copy = self._open_scratch() if self.verify_load else None
            try:
                for chunk in checked(got.chunks, check):
                    if copy is not None:
                        copy.write(chunk)
                    yield chunk
            finally:
                if copy is not None:
                    copy.close()
        except BaseException:
            self._drop_scratch()
            raise
        summary = check.finish()
        problems, figures = compare_counts(summary.keys, at_fetch)
        if problems:
            raise IntegrityError(
                "the Redis snapshot failed its check: key counts differ beyond the "
                "tolerance: " + "; ".join(problems)
            )
        after = info(self.target, "stats")
        self.rdb = summary
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

    def before_commit(self) -> None:
        """``--verify-load``: the streamed copy loads into a throwaway redis-server with
        the same DBSIZE per database, and sampled keys match the live server."""
        if not self.verify_load:
            return
        from rfbackup.sources.redis.verify_load import verify_loaded

        assert self._scratch is not None and self.rdb is not None
        try:
            self.manifest_section()["verify_load"] = verify_loaded(
                self._scratch, self.rdb, self.target
            )
        finally:
            self._drop_scratch()

    def _open_scratch(self) -> BinaryIO:
        import os

        from rfbackup.sandbox.redis import ThrowawayRedis

        self._scratch = ThrowawayRedis(password=secrets.token_hex(16))
        # The engine may fail after the stream, before before_commit(): never leave the copy.
        atexit.register(self._drop_scratch)
        self._scratch.write_conf()
        path = self._scratch.data_dir / self._scratch.dbfilename
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        return os.fdopen(fd, "wb")

    def _drop_scratch(self) -> None:
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None

    def section(self) -> dict[str, Any]:
        return self.manifest_section()

    def manifest_section(self) -> dict[str, Any]:
        if self._section is None:
            raise RuntimeError("manifest_section() before stream() completed")
        return self._section

    def summary(self) -> str:
        s = self.manifest_section()
        total = sum(s["keys"].values())
        return f"{total} keys in {len(s['keys'])} databases by {s['method']}"

    def counts(self) -> dict[str, int]:
        """Keys per database in the snapshot, the figures a restore verifies."""
        if self.rdb is None:
            raise RuntimeError("counts() before stream() completed")
        return {str(db): n for db, n in self.rdb.keys.items()}

    def restore(self, plaintext: IO[bytes], **options: Any) -> Any:
        """Restore from a readable plaintext RDB stream: ``files=`` (a
        :class:`restore.LocalServer`) for a Redis whose files we control, otherwise into
        ``self.target`` by RESTORE (options of :func:`remote.restore_remote`)."""
        from rfbackup.sources.redis import remote, restore

        files = options.pop("files", None)
        if files is not None:
            return restore.restore_files(plaintext, files, **options)
        return remote.restore_remote(plaintext, self.target, **options)
