"""A repository in an S3 bucket (AWS, or any S3-compatible server such as SeaweedFS).

Writes stream into a multipart upload (:mod:`rfbackup.storage.s3writer`): parts of
``part_size`` bytes go up on a few threads while the next ones are produced, so memory
stays at about ``part_size * (concurrency + 1)`` whatever the size of the backup. Nothing
is visible until the upload completes; a failed or interrupted write aborts its upload,
so no parts and no partial object remain. Objects are never overwritten
(``If-None-Match: *``). In a bucket with Object Lock, every write carries the retention
of :mod:`rfbackup.storage.objectlock` and a delete removes every version of a key
(:mod:`rfbackup.storage.s3lock`).

Credentials and endpoint come from the standard AWS chain (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL``, profiles, instance
roles) unless the configuration gives them explicitly (the replica has its own).
"""

from __future__ import annotations

import builtins
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from rfbackup.errors import NotFound, StorageError
from rfbackup.storage import s3lock
from rfbackup.storage.base import ObjectInfo
from rfbackup.storage.objectlock import (
    LockedObjects,
    LockPolicy,
    Protection,
    Retention,
    RetentionPolicy,
)
from rfbackup.storage.s3writer import S3Writer as S3Writer
from rfbackup.storage.s3writer import s3_error as s3_error


@dataclass(frozen=True)
class S3Settings:
    """How to reach one bucket. Secrets only ever go to boto3, never to logs or argv."""

    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    sse: str | None = None  # None, "AES256" (SSE-S3) or "aws:kms" (SSE-KMS)
    kms_key_id: str | None = None
    part_size: int = 16 * 1024 * 1024
    concurrency: int = 4
    max_attempts: int = 8


class _BodyReader(io.RawIOBase):
    """A botocore StreamingBody as a raw binary stream (readinto), for io.BufferedReader.

    A connection cut mid-body (reset, short read) is a StorageError like any failed read."""

    def __init__(self, body: Any, where: str) -> None:
        self._body = body
        self._where = where

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        try:
            data = self._body.read(len(b))
        except (BotoCoreError, OSError) as exc:
            raise StorageError(f"S3 read of {self._where} failed: {exc}") from None
        n = len(data)
        b[:n] = data
        return n

    def close(self) -> None:
        self._body.close()
        super().close()


class S3Repository:
    layout = "component"

    def __init__(
        self, bucket: str, prefix: str, settings: S3Settings, lock: LockPolicy | None = None
    ) -> None:
        self.bucket = bucket
        self.lock = lock  # Object Lock intent; resolved against the bucket on first use
        self._protection: Protection | None = None
        self._resolved: tuple[RetentionPolicy | None] | None = None
        self.prefix = prefix.strip("/")
        self.settings = settings
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        session = boto3.session.Session(
            aws_access_key_id=settings.access_key_id,
            aws_secret_access_key=settings.secret_access_key,
            region_name=settings.region,
        )
        self.client = session.client(
            "s3",
            endpoint_url=settings.endpoint_url,
            config=Config(
                retries={"max_attempts": settings.max_attempts, "mode": "standard"},
                max_pool_connections=max(10, settings.concurrency * 2),
                connect_timeout=10,
                read_timeout=120,
            ),
        )

    def full_key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def relative(self, full: str) -> str:
        return full[len(self.prefix) + 1 :] if self.prefix else full

    def sse_args(self) -> dict[str, str]:
        if self.settings.sse is None:
            return {}
        args = {"ServerSideEncryption": self.settings.sse}
        if self.settings.kms_key_id:
            args["SSEKMSKeyId"] = self.settings.kms_key_id
        return args

    def protection(self) -> Protection:
        """The bucket's versioning and Object Lock (asked once)."""
        if self._protection is None:
            try:
                self._protection = s3lock.protection(self)
            except (ClientError, BotoCoreError) as exc:
                raise s3_error(exc, f"Object Lock query of s3://{self.bucket}") from None
        return self._protection

    def _locked_bucket(self) -> bool:
        """Does the bucket have Object Lock? Unknown (no permission to ask) counts as no:
        then deletes are plain DELETEs, which in a locked bucket only add delete markers."""
        try:
            return self.protection().object_lock
        except StorageError:
            return False

    def retention_policy(self) -> RetentionPolicy | None:
        """The retention every object written here gets, or None (resolved once)."""
        if self._resolved is None:
            self._resolved = (s3lock.resolve(self),)
        return self._resolved[0]

    def lock_args(self, key: str) -> dict[str, Any]:
        policy = self.retention_policy()
        r = policy.for_key(key, datetime.now(UTC)) if policy else None
        return {} if r is None else {"ObjectLockMode": r.mode, "ObjectLockRetainUntilDate": r.until}

    def object_retention(self, key: str) -> Retention | None:
        """The lock on ``key``'s current version, None when it has none (or is absent)."""
        try:
            return s3lock.head_retention(self, key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise s3_error(exc, f"retention of {self.describe(key)}") from None
        except BotoCoreError as exc:
            raise s3_error(exc, f"retention of {self.describe(key)}") from None

    def locked_until(self, key: str, now: datetime) -> Retention | None:
        """The longest lock still held at ``now`` by any version of ``key``."""
        if not self._locked_bucket():
            return None
        try:
            held = s3lock.locks_of(self, key, now)
        except (ClientError, BotoCoreError) as exc:
            raise s3_error(exc, f"retention of {self.describe(key)}") from None
        return max((r for _, r in held), key=lambda r: r.until, default=None)

    def extend_retention(self, key: str, retention: Retention) -> int:
        """Lengthen the locks of ``key``'s versions to ``retention`` (never shortens)."""
        try:
            return s3lock.extend(self, key, retention)
        except (ClientError, BotoCoreError) as exc:
            raise s3_error(exc, f"retention extension of {self.describe(key)}") from None

    def writer(self, key: str) -> S3Writer:
        return S3Writer(self, key)

    def put(self, key: str, data: bytes) -> None:
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=self.full_key(key),
                Body=data,
                IfNoneMatch="*",
                **self.sse_args(),
                **self.lock_args(key),
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "PreconditionFailed":
                raise StorageError(
                    f"{self.describe(key)} already exists; refusing to overwrite it"
                ) from None
            raise s3_error(exc, f"upload of {self.describe(key)}") from None
        except BotoCoreError as exc:
            raise s3_error(exc, f"upload of {self.describe(key)}") from None

    def open(self, key: str) -> BinaryIO:
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self.full_key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise NotFound(f"{self.describe(key)} does not exist") from None
            raise s3_error(exc, f"read of {self.describe(key)}") from None
        except BotoCoreError as exc:
            raise s3_error(exc, f"read of {self.describe(key)}") from None
        return io.BufferedReader(_BodyReader(resp["Body"], self.describe(key)), 1024 * 1024)

    def stat(self, key: str) -> ObjectInfo | None:
        try:
            resp = self.client.head_object(Bucket=self.bucket, Key=self.full_key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise s3_error(exc, f"stat of {self.describe(key)}") from None
        except BotoCoreError as exc:
            raise s3_error(exc, f"stat of {self.describe(key)}") from None
        return ObjectInfo(key, int(resp["ContentLength"]), resp["LastModified"])

    def list(self, prefix: str = "", include_partial: bool = False) -> Iterator[ObjectInfo]:
        full_prefix = self.full_key(prefix) if self.prefix else prefix
        found: builtins.list[ObjectInfo] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=full_prefix
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    found.append(
                        ObjectInfo(self.relative(obj["Key"]), int(obj["Size"]), obj["LastModified"])
                    )
            if include_partial:
                uploads = self.client.get_paginator("list_multipart_uploads").paginate(
                    Bucket=self.bucket, Prefix=full_prefix
                )
                for page in uploads:
                    for up in page.get("Uploads", []):
                        found.append(ObjectInfo(self.relative(up["Key"]), 0, up["Initiated"], True))
        except (ClientError, BotoCoreError) as exc:
            raise s3_error(exc, f"listing of {self.url}") from None
        yield from sorted(found, key=lambda o: (o.key, o.partial))

    def delete(self, keys: Iterable[str]) -> None:
        """In a bucket with Object Lock, every version of each key goes (a plain DELETE would
        only add a delete marker); locked versions stay, and LockedObjects names them."""
        if self._locked_bucket():
            wanted = builtins.list(keys)
            try:
                refused = s3lock.delete_versions(self, wanted)
            except (ClientError, BotoCoreError) as exc:
                raise s3_error(exc, f"delete in {self.url}") from None
            locked = sorted({k for k, code in refused if code == "AccessDenied"})
            other = [(k, c) for k, c in refused if c != "AccessDenied"]
            if other:
                raise StorageError(
                    f"S3 delete failed for {len(other)} version(s), e.g. {other[0][0]}: "
                    f"{other[0][1]}"
                )
            if locked:
                raise LockedObjects(locked, self.url)
            return
        batch: builtins.list[str] = []
        for key in keys:
            batch.append(self.full_key(key))
            if len(batch) == 1000:
                self._delete_batch(batch)
                batch = []
        if batch:
            self._delete_batch(batch)

    def _delete_batch(self, full_keys: builtins.list[str]) -> None:
        try:
            resp = self.client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": k} for k in full_keys], "Quiet": True},
            )
        except (ClientError, BotoCoreError) as exc:
            raise s3_error(exc, f"delete in {self.url}") from None
        errors = resp.get("Errors") or []
        if errors:
            first = errors[0]
            raise StorageError(
                f"S3 delete failed for {len(errors)} object(s), e.g. {first.get('Key')}: "
                f"{first.get('Code')}"
            )

    def discard_partial(self, key: str) -> None:
        full = self.full_key(key)
        try:
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=full
            )
            for page in pages:
                for up in page.get("Uploads", []):
                    if up["Key"] == full:
                        self.client.abort_multipart_upload(
                            Bucket=self.bucket, Key=full, UploadId=up["UploadId"]
                        )
        except (ClientError, BotoCoreError) as exc:
            raise s3_error(exc, f"abort of {self.describe(key)}") from None

    def describe(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.full_key(key)}"

    def read_tagged(self, key: str) -> tuple[bytes, str] | None:
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self.full_key(key))
            return resp["Body"].read(), str(resp["ETag"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise s3_error(exc, f"read of {self.describe(key)}") from None
        except BotoCoreError as exc:
            raise s3_error(exc, f"read of {self.describe(key)}") from None

    def put_conditional(self, key: str, data: bytes, if_match: str | None) -> str | None:
        condition = {"IfNoneMatch": "*"} if if_match is None else {"IfMatch": if_match}
        try:
            resp = self.client.put_object(
                Bucket=self.bucket,
                Key=self.full_key(key),
                Body=data,
                **condition,
                **self.sse_args(),
                **self.lock_args(key),
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey"):
                return None
            raise s3_error(exc, f"upload of {self.describe(key)}") from None
        except BotoCoreError as exc:
            raise s3_error(exc, f"upload of {self.describe(key)}") from None
        return str(resp["ETag"])
