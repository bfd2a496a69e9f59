"""Repositories: where backups are stored. ``open_repository(url)`` picks the backend."""

from __future__ import annotations

from pathlib import Path

from rfbackup.errors import ConfigError
from rfbackup.storage.base import ObjectInfo, ObjectWriter, Repository, put_bytes, read_bytes

__all__ = ["ObjectInfo", "ObjectWriter", "Repository", "open_repository", "put_bytes", "read_bytes"]


def open_repository(url: str) -> Repository:
    """A path (``backups/``, ``/srv/backups``, ``file:///srv/backups``) or ``s3://bucket/prefix``."""
    if url.startswith("s3://"):
        raise ConfigError("S3 repositories are not available in this version")
    if "://" in url and not url.startswith("file://"):
        raise ConfigError(f"unsupported repository URL {url!r}: use a path or s3://bucket/prefix")
    from rfbackup.storage.local import LocalRepository

    return LocalRepository(Path(url.removeprefix("file://")))
