"""The S3 calls behind Object Lock: the bucket's protection, object versions and their
retention, version deletes, extending a lock, bringing a locked version back.

Measured on SeaweedFS 4.x and as AWS documents it: in a bucket with Object Lock, a DELETE
without a version id succeeds and only adds a delete marker (the locked version stays); a
DELETE of a locked version answers 403 AccessDenied, also in DeleteObjects' per-key errors;
shortening a COMPLIANCE retention is refused, extending it is allowed; a governance lock
yields to ``BypassGovernanceRetention`` with the s3:BypassGovernanceRetention permission.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from rfbackup.errors import ConfigError
from rfbackup.logs import log
from rfbackup.storage.objectlock import Protection, Retention, RetentionPolicy

if TYPE_CHECKING:
    from rfbackup.storage.s3 import S3Repository

_NO_LOCK_CONFIG = ("ObjectLockConfigurationNotFoundError", "NoSuchObjectLockConfiguration")


@dataclass(frozen=True)
class Version:
    key: str  # relative to the repository
    version_id: str
    latest: bool
    delete_marker: bool
    modified: datetime
    etag: str = ""
    size: int = 0


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def protection(repo: S3Repository) -> Protection:
    """Raises ClientError/BotoCoreError when the bucket cannot be asked."""
    client, bucket = repo.client, repo.bucket
    status = client.get_bucket_versioning(Bucket=bucket).get("Status") or "Off"
    try:
        conf = client.get_object_lock_configuration(Bucket=bucket)
        enabled = conf.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"
    except ClientError as exc:
        if _code(exc) not in _NO_LOCK_CONFIG:
            raise
        enabled = False
    return Protection(str(status), enabled)


def resolve(repo: S3Repository) -> RetentionPolicy | None:
    """The retention objects written to ``repo`` get, from its LockPolicy and the bucket.

    An explicit mode on a bucket without Object Lock is a ConfigError (every put would be
    refused); in production an unlocked bucket is a warning on every run."""
    policy = repo.lock
    if policy is None or (policy.mode == "off" and not policy.production):
        return None
    where = f"s3://{repo.bucket}"
    try:
        locked = repo.protection().object_lock
    except Exception as exc:  # any failure: the bucket's state is unknown
        if policy.mode in ("compliance", "governance"):
            log.warning(
                "cannot read the Object Lock configuration of %s (%s); writing with "
                "object_lock.mode=%s anyway",
                where,
                exc,
                policy.mode,
            )
            return policy.retention()
        log.warning("cannot read the Object Lock configuration of %s: %s", where, exc)
        return None
    if not locked:
        if policy.mode in ("compliance", "governance"):
            raise ConfigError(
                f"object_lock.mode is {policy.mode} but {where} has no Object Lock; create the "
                "bucket with --object-lock-enabled-for-bucket (docs/immutability.md)"
            )
        if policy.production:
            log.warning(
                "production repository %s has no Object Lock: a stolen backup key can delete "
                "every backup (docs/immutability.md)",
                where,
            )
        return None
    if policy.effective_mode == "off":
        if policy.production:
            log.warning("object_lock.mode is off for production repository %s", where)
        return None
    return policy.retention()


def head_retention(repo: S3Repository, key: str, version_id: str | None = None) -> Retention | None:
    """The retention of ``key`` (its current version, or ``version_id``); None when unlocked.
    Raises ClientError (404 when absent)."""
    args: dict[str, Any] = {"Bucket": repo.bucket, "Key": repo.full_key(key)}
    if version_id:
        args["VersionId"] = version_id
    resp = repo.client.head_object(**args)
    mode, until = resp.get("ObjectLockMode"), resp.get("ObjectLockRetainUntilDate")
    return Retention(str(mode), until) if mode and until else None


def versions(repo: S3Repository, prefix: str, exact: bool = False) -> list[Version]:
    """Every version and delete marker under ``prefix`` (or of exactly that key), by key;
    within a key the object versions come newest first, as S3 lists them (LastModified has
    only second precision on some servers: the server's order is the truth), then the
    delete markers."""
    full = repo.full_key(prefix) if prefix or repo.prefix else prefix
    found: list[Version] = []
    pages = repo.client.get_paginator("list_object_versions").paginate(
        Bucket=repo.bucket, Prefix=full
    )
    for page in pages:
        for kind, marker in (("Versions", False), ("DeleteMarkers", True)):
            for v in page.get(kind, []):
                if exact and v["Key"] != full:
                    continue
                found.append(
                    Version(
                        repo.relative(v["Key"]),
                        str(v.get("VersionId") or "null"),
                        bool(v.get("IsLatest")),
                        marker,
                        v["LastModified"],
                        str(v.get("ETag", "")),
                        int(v.get("Size", 0)),
                    )
                )
    found.sort(key=lambda v: (v.key, v.delete_marker))  # stable: the server's order stays
    return found


def locks_of(repo: S3Repository, key: str, now: datetime) -> list[tuple[Version, Retention]]:
    """The versions of ``key`` still locked at ``now``."""
    held = []
    for v in versions(repo, key, exact=True):
        if v.delete_marker:
            continue
        r = head_retention(repo, key, v.version_id)
        if r is not None and r.until > now:
            held.append((v, r))
    return held


def delete_versions(repo: S3Repository, keys: list[str]) -> list[tuple[str, str]]:
    """Delete every version and delete marker of ``keys``: (key, error code) of those refused
    (AccessDenied for a locked version). Governance locks are never bypassed."""
    refused: list[tuple[str, str]] = []
    for key in keys:
        full = repo.full_key(key)
        targets = [{"Key": full, "VersionId": v.version_id} for v in versions(repo, key, True)]
        for start in range(0, len(targets), 1000):
            resp = repo.client.delete_objects(
                Bucket=repo.bucket, Delete={"Objects": targets[start : start + 1000], "Quiet": True}
            )
            refused += [(key, str(e.get("Code"))) for e in resp.get("Errors") or []]
    return refused


def extend(repo: S3Repository, key: str, retention: Retention) -> int:
    """Lengthen every locked version of ``key`` whose lock ends before ``retention.until``
    (a lock is never shortened). How many versions were extended."""
    done = 0
    for v in versions(repo, key, exact=True):
        if v.delete_marker:
            continue
        current = head_retention(repo, key, v.version_id)
        if current is not None and current.until >= retention.until:
            continue
        mode = current.mode if current is not None else retention.mode
        repo.client.put_object_retention(
            Bucket=repo.bucket,
            Key=repo.full_key(key),
            VersionId=v.version_id,
            Retention={"Mode": mode, "RetainUntilDate": retention.until},
        )
        done += 1
    return done


def bring_back(repo: S3Repository, version: Version, retention: Retention) -> None:
    """Make ``version`` the current one again (a copy, locked like the original)."""
    full = repo.full_key(version.key)
    repo.client.copy_object(
        Bucket=repo.bucket,
        Key=full,
        CopySource={"Bucket": repo.bucket, "Key": full, "VersionId": version.version_id},
        ObjectLockMode=retention.mode,
        ObjectLockRetainUntilDate=retention.until,
        **repo.sse_args(),
    )


S3_ERRORS = (ClientError, BotoCoreError)
