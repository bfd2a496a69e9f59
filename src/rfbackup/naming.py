"""Backup names: the runbook's ``backup_YYYYMMDD_HHMMSS.sql.gz`` and its sidecars.

A backup is a data object plus sidecars that share its stem::

    backup_20250120_143000.sql.gz                 the dump
    backup_20250120_143000.sql.gz.manifest.json   the commit point, written last
    backup_20250120_143000.roles.gz               global objects (roles), when captured
    backup_20250120_143000.dbprops.json           the database's owner, ACL, settings, comment

The roles sidecar was once named ``backup_….roles.sql.gz``, which the runbook's
``ls backups/backup_*.sql.gz | tail -1`` picked instead of the newest dump. New sidecars end
in ``.roles.gz`` (``.roles.gz.age`` encrypted), outside every data glob; the old name is
still read wherever the manifest names it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from rfbackup.config_lean import Environment

MANIFEST_SUFFIX = ".manifest.json"
ROLES_SUFFIX = ".roles.gz"
LEGACY_ROLES_SUFFIX = ".roles.sql.gz"  # written before; still read, copied and pruned
DBPROPS_SUFFIX = ".dbprops.json"
AGE_SUFFIX = ".age"
COMPONENT_PREFIX = "postgres/"
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
_EXT = r"(?P<ext>\.(?:sql|dump)(?:\.gz|\.zst)?)(?P<age>\.age)?"
_FLAT_RE = re.compile(rf"^backup_(?:(?P<tag>prod|staging)_)?(?P<stamp>\d{{8}}_\d{{6}}){_EXT}$")
_COMPONENT_RE = re.compile(rf"^(?:.*/)?postgres/(?P<stamp>\d{{8}}_\d{{6}}){_EXT}$")


@dataclass(frozen=True)
class BackupName:
    """``layout`` "flat" is the runbook's local folder (``backup_[prod_]STAMP.sql.gz``);
    "component" is its S3 layout (``postgres/STAMP.sql.gz``), where the environment lives in
    the manifest (and usually in the bucket) rather than the name."""

    env: Environment | None
    stamp: datetime
    ext: str
    encrypted: bool = False
    layout: str = "flat"

    @property
    def key(self) -> str:
        return self.stem + self.ext + (AGE_SUFFIX if self.encrypted else "")

    @property
    def stem(self) -> str:
        stamp = self.stamp.strftime(STAMP_FORMAT)
        if self.layout == "component":
            return f"{COMPONENT_PREFIX}{stamp}"
        return f"backup_{_ENV_TAG.get(self.env, '') if self.env else ''}{stamp}"

    @property
    def manifest_key(self) -> str:
        return self.key + MANIFEST_SUFFIX

    @property
    def roles_key(self) -> str:
        return self.stem + ROLES_SUFFIX + (AGE_SUFFIX if self.encrypted else "")

    @property
    def dbprops_key(self) -> str:
        return self.stem + DBPROPS_SUFFIX + (AGE_SUFFIX if self.encrypted else "")

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
    def new(
        cls,
        env: Environment,
        dump_format: str,
        compression: str,
        at: datetime,
        encrypted: bool = False,
        layout: str = "flat",
    ) -> BackupName:
        stamp = at.astimezone(UTC).replace(microsecond=0)
        return cls(env, stamp, EXTENSIONS[(dump_format, compression)], encrypted, layout)

    @classmethod
    def parse(cls, key: str) -> BackupName | None:
        """The name of a PostgreSQL backup data file, or None for anything else."""
        m = _FLAT_RE.match(key.rsplit("/", 1)[-1])
        layout = "flat"
        env: Environment | None = None
        if m is not None:
            env = _TAG_ENV.get(m["tag"] or "", Environment.development)
        else:
            m = _COMPONENT_RE.match(key)
            layout = "component"
        if m is None:
            return None
        stamp = datetime.strptime(m["stamp"], STAMP_FORMAT).replace(tzinfo=UTC)
        return cls(env, stamp, m["ext"], bool(m["age"]), layout)


def roles_candidates(name: BackupName) -> list[str]:
    """Both names a backup's roles sidecar can have (new first), for backups whose manifest
    cannot say which."""
    age = AGE_SUFFIX if name.encrypted else ""
    return [name.roles_key, name.stem + LEGACY_ROLES_SUFFIX + age]


_SIDECAR_SUFFIXES = (
    MANIFEST_SUFFIX,
    *(s + a for s in (ROLES_SUFFIX, LEGACY_ROLES_SUFFIX, DBPROPS_SUFFIX) for a in ("", AGE_SUFFIX)),
)


def is_sidecar(key: str) -> bool:
    return key.endswith(_SIDECAR_SUFFIXES)
