"""Each component's policy: compression, retention, what to back up (``[postgres]``,
``[redis]``, ``[pitr]``, ``[artifacts]`` in rfbackup.toml). Models only; config.py reads them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import NoDecode

from rfbackup.limits import MAX_DAYS

if TYPE_CHECKING:
    pass

Compression = Literal["gzip", "zstd"]
DumpFormat = Literal["plain", "custom"]


class PostgresPolicy(BaseModel):
    """How PostgreSQL backups are made and kept."""

    model_config = ConfigDict(extra="forbid")  # a typo is an error, not a default

    compression: Compression = "gzip"
    gzip_level: int = Field(default=4, ge=1, le=12)  # libdeflate: 4 is ~3% larger than gzip -6
    zstd_level: int = Field(default=3, ge=1, le=19)
    compression_threads: int = Field(default_factory=lambda: min(os.cpu_count() or 1, 8), ge=1)
    keep_days: int = Field(default=30, ge=0, le=MAX_DAYS)
    keep_min: int = Field(default=3, ge=0)
    restore_jobs: int = Field(default=2, ge=1, le=64)


class RedisPolicy(BaseModel):
    """How Redis snapshots are taken and kept (``[redis]``, ``RFBACKUP_REDIS__*``)."""

    model_config = ConfigDict(extra="forbid")  # a typo is an error, not a default

    # The RDB is LZF-compressed by Redis already: zstd level 1 stores about what gzip -6
    # does (benchmarks/redis_backup.py) for a fifth of gzip level 4's CPU.
    compression: Compression = "zstd"
    gzip_level: int = Field(default=4, ge=1, le=12)
    zstd_level: int = Field(default=1, ge=1, le=19)
    compression_threads: int = Field(default_factory=lambda: min(os.cpu_count() or 1, 8), ge=1)
    keep_days: int = Field(default=7, ge=0, le=MAX_DAYS)  # the runbook: kept 7 days
    keep_min: int = Field(default=24, ge=0)  # hourly: a day's snapshots survive any gap
    fetch_timeout_seconds: float = Field(default=300, gt=0)  # silence before giving up
    bgsave_fallback: bool = True  # when SYNC is refused: BGSAVE and read the file


class PitrPolicy(BaseModel):
    """Physical base backups and the WAL archive (point-in-time recovery)."""

    model_config = ConfigDict(extra="forbid")  # a typo is an error, not a default

    zstd_level: int = Field(default=3, ge=1, le=19)  # base backups, like pgBackRest
    wal_zstd_level: int = Field(default=1, ge=1, le=19)  # WAL: half the CPU of level 3
    compression_threads: int = Field(default_factory=lambda: min(os.cpu_count() or 1, 8), ge=1)
    # Base backups; WAL follows the oldest kept.
    keep_days: int = Field(default=14, ge=0, le=MAX_DAYS)
    keep_min: int = Field(default=2, ge=1)
    push_batch: int = Field(default=32, ge=1, le=256)  # pusher: metrics every N; manual push: N
    push_threads: int = Field(default=4, ge=1, le=64)
    prefetch: int = Field(default=8, ge=0, le=256)  # segments wal-fetch fetches ahead
    archive_wait_seconds: int = Field(default=300, ge=1)  # base backup waits for its WAL
    checkpoint: Literal["fast", "spread"] = "fast"


class ArtifactsPolicy(BaseModel):
    """Artifact volume snapshots (docs/artifacts.md): what to back up and how long to keep it."""

    model_config = ConfigDict(extra="forbid")  # a typo is an error, not a default

    paths: Annotated[list[Path], NoDecode] = []  # RFBACKUP_ARTIFACTS__PATHS=/srv/a,/srv/b
    key_file: Path | None = None  # the writer key (chunk ids), made by `rfbackup artifacts init`
    keep_days: int = Field(default=90, ge=0, le=MAX_DAYS)
    keep_min: int = Field(default=3, ge=0)  # complete snapshots always kept, whatever their age
    pack_size_mb: int = Field(default=16, ge=1, le=512)
    chunk_size_kb: int = Field(default=1024, ge=64, le=4096)  # FastCDC average, set at init
    zstd_level: int = Field(default=3, ge=1, le=19)
    prune_grace_hours: int = Field(default=24, ge=0)  # packs no index names, younger: kept

    @field_validator("paths", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [v for v in value.replace(",", " ").split() if v]
        return value
