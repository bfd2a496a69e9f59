"""Repositories: where backups are stored. ``open_repository(url)`` picks the backend."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from rfbackup.errors import ConfigError
from rfbackup.storage.base import ObjectInfo, ObjectWriter, Repository, put_bytes, read_bytes

if TYPE_CHECKING:
    from rfbackup.storage.objectlock import LockPolicy
    from rfbackup.storage.s3 import S3Settings

__all__ = [
    "ObjectInfo",
    "ObjectWriter",
    "Repository",
    "check_url",
    "open_repository",
    "put_bytes",
    "read_bytes",
]

# S3 bucket naming rules: 3-63 lower-case letters, digits, dots and hyphens.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# A URL whose ':' was lost to a typo: "s3//bucket", "file//srv".
_MISSING_COLON = re.compile(r"^(?i:s3|file|gs|gcs|az|https?)//")


def check_url(url: str, what: str = "repository") -> str:
    """``url`` unchanged if it names a repository we support, else a ConfigError.

    Accepted: ``s3://bucket[/prefix]``, ``file:///absolute/path`` and plain paths. A relative
    path whose first component contains ':' (``s3:/bucket``, ``backups:old``) or that starts
    like a URL without its ':' (``s3//bucket``) is refused, so a typo in an S3 URL cannot
    quietly put backups in a local folder; write ``./name:with:colons`` for such a folder.
    """
    usage = "use s3://bucket[/prefix], file:///path or a folder path"
    if url.startswith("s3://"):
        bucket = url.removeprefix("s3://").partition("/")[0]
        if not _BUCKET.match(bucket):
            raise ConfigError(
                f"invalid S3 {what} URL {url!r}: the bucket name must be 3-63 lower-case "
                "letters, digits, '.' or '-' (s3://bucket[/prefix])"
            )
        return url
    if url.startswith("file://"):
        if not url.removeprefix("file://").startswith("/"):
            raise ConfigError(f"invalid {what} URL {url!r}: file:// needs an absolute path")
        return url
    if not url.strip():
        raise ConfigError(f"empty {what} URL: {usage}")
    if url.startswith(("/", "./", "../")):
        return url
    if ":" in url.split("/", 1)[0] or _MISSING_COLON.match(url):
        raise ConfigError(f"unsupported {what} URL {url!r}: {usage}")
    return url


def open_repository(
    url: str, s3: S3Settings | None = None, lock: LockPolicy | None = None
) -> Repository:
    """A path (``backups/``, ``/srv/backups``, ``file:///srv/backups``) or ``s3://bucket/prefix``.

    ``lock``: the Object Lock policy of an S3 repository (a folder ignores it)."""
    check_url(url)
    if url.startswith("s3://"):
        from rfbackup.storage.s3 import S3Repository, S3Settings

        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        return S3Repository(bucket, prefix, s3 or S3Settings(), lock)
    from rfbackup.storage.local import LocalRepository

    return LocalRepository(Path(url.removeprefix("file://")))
