"""Repositories: where backups are stored. ``open_repository(url)`` picks the backend."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rfbackup.errors import ConfigError
from rfbackup.storage.base import ObjectInfo, ObjectWriter, Repository, put_bytes, read_bytes

if TYPE_CHECKING:
    from rfbackup.storage.s3 import S3Settings

__all__ = ["ObjectInfo", "ObjectWriter", "Repository", "open_repository", "put_bytes", "read_bytes"]


def open_repository(url: str, s3: S3Settings | None = None) -> Repository:
    """A path (``backups/``, ``/srv/backups``, ``file:///srv/backups``) or ``s3://bucket/prefix``."""
    if url.startswith("s3://"):
        from rfbackup.storage.s3 import S3Repository, S3Settings

        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if len(bucket) < 3:
            raise ConfigError(f"invalid S3 repository URL {url!r}: s3://bucket[/prefix]")
        return S3Repository(bucket, prefix, s3 or S3Settings())
    if "://" in url and not url.startswith("file://"):
        raise ConfigError(f"unsupported repository URL {url!r}: use a path or s3://bucket/prefix")
    from rfbackup.storage.local import LocalRepository

    return LocalRepository(Path(url.removeprefix("file://")))
