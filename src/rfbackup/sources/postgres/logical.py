"""PostgreSQL logical backups as an engine source: pg_dump in a snapshot, with exact row
counts from that snapshot, roles and database properties as sidecars.

Keys follow the runbook: ``backup_[prod_]YYYYMMDD_HHMMSS.sql.gz`` in a local folder,
``postgres/YYYYMMDD_HHMMSS.sql.gz`` in S3 (see rfbackup.naming).
"""

from __future__ import annotations

import json
from collections.abc import Generator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rfbackup.engine.source import Keys, Sidecar, SourceBase
from rfbackup.errors import ConfigError
from rfbackup.naming import DBPROPS_SUFFIX, ROLES_SUFFIX, BackupName

if TYPE_CHECKING:
    from rfbackup.config import Environment, Settings
    from rfbackup.sources.postgres.dump import DumpInfo
    from rfbackup.sources.postgres.target import PostgresTarget

COMPONENT = "postgres"


class PostgresLogical(SourceBase):
    component = COMPONENT
    sidecar_suffixes: tuple[str, ...] = (ROLES_SUFFIX, DBPROPS_SUFFIX)

    def __init__(
        self,
        target: PostgresTarget,
        env: Environment,
        dump_format: str = "plain",
        compression: str = "gzip",
        level: int = 4,
        threads: int = 2,
    ) -> None:
        if not target.dbname:
            raise ConfigError("no database to back up: set PGDATABASE or DATABASE_URL")
        self.target = target
        self.env = env
        self.dump_format = dump_format
        self.compression = compression
        self.level = level
        self.threads = threads
        self.progress_label = f"dumping {target.dbname}"
        self._info: DumpInfo | None = None
        self._restrict_key: str | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, dump_format: str = "plain", compression: str | None = None
    ) -> PostgresLogical:
        policy = settings.postgres
        compression = compression or policy.compression
        level = policy.gzip_level if compression == "gzip" else policy.zstd_level
        return cls(
            settings.postgres_target(),
            settings.env,
            dump_format,
            compression,
            level,
            policy.compression_threads,
        )

    def subject(self) -> str:
        return self.target.dbname or ""

    def describe(self) -> str:
        return f"{self.target.display} ({self.dump_format})"

    def keys(self, at: datetime, encrypted: bool, layout: str) -> Keys:
        name = BackupName.new(self.env, self.dump_format, self.compression, at, encrypted, layout)
        return Keys(name.stem, name.ext, encrypted)

    def owns(self, key: str) -> bool:
        return BackupName.parse(key) is not None

    def stream(self) -> Generator[bytes]:
        from rfbackup.sources.postgres import sqlguard
        from rfbackup.sources.postgres.dump import PostgresDump

        self._info = None
        self._restrict_key = None
        with PostgresDump(self.target, self.dump_format) as dump:
            self.progress_label = f"dumping {dump.info.database['name']}"
            self.size_estimate = dump.size_estimate
            yield b""  # pg_dump runs: the engine may begin the partial write now
            first = True
            for chunk in dump.chunks():
                if first and self.dump_format == "plain":
                    self._restrict_key = sqlguard.restrict_key(bytes(chunk[:4096]))
                first = False
                yield chunk
            self._info = dump.finish()

    @property
    def info(self) -> DumpInfo:
        if self._info is None:
            raise RuntimeError("the dump has not completed")
        return self._info

    def sidecars(self) -> list[Sidecar]:
        import deflate

        from rfbackup.sources.postgres import dbprops, roles

        dbname = self.info.database["name"]
        script, reason = roles.capture(self.target, dbname)
        captured = [
            Sidecar(
                "roles",
                ROLES_SUFFIX,
                None if script is None else bytes(deflate.gzip_compress(script, 6)),
                reason or "",
                "restore onto a new server needs them created",
            )
        ]
        props, reason = dbprops.capture(self.target.with_dbname(dbname))
        data = None if props is None else json.dumps(props, indent=2, sort_keys=True).encode()
        captured.append(
            Sidecar(
                "db_properties",
                DBPROPS_SUFFIX,
                None if data is None else data + b"\n",
                reason or "",
                "a restore cannot apply them",
            )
        )
        return captured

    def section(self) -> dict[str, Any]:
        info = self.info
        dump: dict[str, Any] = {
            "format": self.dump_format,
            "pg_dump_version": info.pg_dump_version,
            "snapshot": info.snapshot,
            "snapshot_xmin": info.snapshot_xmin,
        }
        if self._restrict_key:
            dump["restrict_key"] = self._restrict_key
        return {
            "database": info.database,
            "dump": dump,
            "row_counts": info.row_counts,
            "checks": info.checks,
        }

    def summary(self) -> str:
        return f"{len(self.info.row_counts)} tables"
