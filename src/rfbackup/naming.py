"""Backup names: the runbook's ``backup_YYYYMMDD_HHMMSS.sql.gz`` and its sidecars.

A backup is a data object plus sidecars that share its stem::

    backup_20250120_143000.sql.gz                 the dump
    backup_20250120_143000.sql.gz.manifest.json   the commit point, written last
    backup_20250120_143000.roles.sql.gz           global objects (roles), when captured
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from rfbackup.config import Environment

MANIFEST_SUFFIX = ".manifest.json"
ROLES_SUFFIX = ".roles.sql.gz"
STAMP_FORMAT = "%Y%m%d_%H%M%S"

_ENV_TAG = {Environment.production: "prod_", Environment.staging: "staging_"}
_TAG_ENV = {v.rstrip("_"): k for k, v in _ENV_TAG.items()}

# Data extensions, by dump format and compression.
EXTENSIONS = {
    ("plain", "gzip"): ".sql.gz",
    ("plain", "zstd"): ".sql.zst",
    ("custom", "gzip"): ".dump.gz",
    ("custom", "zstd"): ".dump.zst",
}
_NAME_RE = re.compile(
    r"^backup_(?:(?P<tag>prod|staging)_)?(?P<stamp>\d{8}_\d{6})(?P<ext>\.(?:sql|dump)(?:\.gz|\.zst)?)$"
)


@dataclass(frozen=True)
class BackupName:
    env: Environment
    stamp: datetime
    ext: str

    @property
    def key(self) -> str:
        return f"backup_{_ENV_TAG.get(self.env, '')}{self.stamp.strftime(STAMP_FORMAT)}{self.ext}"

    @property
    def stem(self) -> str:
        return self.key[: -len(self.ext)]

    @property
    def manifest_key(self) -> str:
        return self.key + MANIFEST_SUFFIX

    @property
    def roles_key(self) -> str:
        return self.stem + ROLES_SUFFIX

    @property
    def compression(self) -> str | None:
        if self.ext.endswith(".gz"):
            return "gzip"
        if self.ext.endswith(".zst"):
            return "zstd"
        return None

    @property
    def dump_format(self) -> str:
        return "custom" if self.ext.startswith(".dump") else "plain"

    @classmethod
    def new(cls, env: Environment, dump_format: str, compression: str, at: datetime) -> BackupName:
        return cls(
            env, at.astimezone(UTC).replace(microsecond=0), EXTENSIONS[(dump_format, compression)]
        )

    @classmethod
    def parse(cls, key: str) -> BackupName | None:
        """The name of a PostgreSQL backup data file, or None for anything else."""
        m = _NAME_RE.match(key.rsplit("/", 1)[-1])
        if m is None:
            return None
        env = _TAG_ENV.get(m["tag"] or "", Environment.development)
        stamp = datetime.strptime(m["stamp"], STAMP_FORMAT).replace(tzinfo=UTC)
        return cls(env, stamp, m["ext"])


def is_sidecar(key: str) -> bool:
    return key.endswith(MANIFEST_SUFFIX) or key.endswith(ROLES_SUFFIX)
