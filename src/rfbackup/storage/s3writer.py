"""Streaming writes into an S3 multipart upload (see :mod:`rfbackup.storage.s3`).

Parts of ``part_size`` bytes go up on a few threads while the next ones are produced;
nothing is visible until the upload completes; a failed or interrupted write aborts it.
The upload is created with the repository's Object Lock retention for the key, if any.
"""

from __future__ import annotations

import contextlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from rfbackup import interrupts
from rfbackup.errors import StorageError

if TYPE_CHECKING:
    from rfbackup.storage.s3 import S3Repository

MIN_PART = 5 * 1024 * 1024
MAX_PARTS = 10_000


def s3_error(exc: Exception, what: str) -> StorageError:
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return StorageError(f"S3 {what} failed: {err.get('Code')}: {err.get('Message')}")
    return StorageError(f"S3 {what} failed: {exc}")


class S3Writer:
    def __init__(self, repo: S3Repository, key: str) -> None:
        self.repo = repo
        self.key = key
        self.full = repo.full_key(key)
        self._chunks: list[memoryview] = []  # the part being filled
        self._filled = 0
        self._pending: deque[Future[dict[str, Any]]] = deque()
        self._parts: list[dict[str, Any]] = []
        self._part_size = repo.settings.part_size
        # Start the upload now: an unreachable bucket fails before any work is done, and
        # the write shows as in progress in listings from its first moment.
        try:
            resp = repo.client.create_multipart_upload(
                Bucket=repo.bucket, Key=self.full, **repo.sse_args(), **repo.lock_args(key)
            )
        except (ClientError, BotoCoreError) as exc:
            raise s3_error(exc, f"upload of {repo.describe(key)}") from None
        self._upload_id: str | None = resp["UploadId"]
        self._pool = ThreadPoolExecutor(
            repo.settings.concurrency,
            thread_name_prefix="s3-part",
            initializer=interrupts.leave_to_main_thread,
        )

    def write(self, data: bytes | bytearray | memoryview) -> int:
        n = len(data)
        # bytes cannot change under us, so parts may point into them (one copy, the join);
        # a buffer the caller may reuse is copied first.
        view = memoryview(data if isinstance(data, bytes) else bytes(data)).cast("B")
        while len(view) >= self._part_size - self._filled:
            cut = self._part_size - self._filled
            self._chunks.append(view[:cut])
            view = view[cut:]
            body = b"".join(self._chunks)
            self._chunks.clear()  # before waiting for a slot: the part is in memory once
            self._filled = 0
            self._upload(body)
        if view:
            self._chunks.append(view)
            self._filled += len(view)
        return n

    def _upload(self, body: bytes) -> None:
        if self._upload_id is None:
            raise StorageError(f"write to {self.repo.describe(self.key)} after commit or abort")
        number = len(self._parts) + len(self._pending) + 1
        if number > MAX_PARTS:
            raise StorageError(f"{self.key}: more than {MAX_PARTS} parts; raise part_size")
        if number % 1000 == 0:  # parts grow with the object: 10,000 parts cover several TB
            self._part_size *= 2
        for fut in self._pending:  # a failed part stops the write now, not parts later
            if fut.done() and fut.exception() is not None:
                fut.result()
        self._pending.append(self._pool.submit(self._put_part, number, body))
        # ``concurrency`` parts go up while the next one fills: at most concurrency + 1 parts
        # are in memory.
        while len(self._pending) > self.repo.settings.concurrency:
            self._parts.append(self._pending.popleft().result())

    def _put_part(self, number: int, body: bytes) -> dict[str, Any]:
        try:
            resp = self.repo.client.upload_part(
                Bucket=self.repo.bucket,
                Key=self.full,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=body,
            )
        except (ClientError, BotoCoreError) as exc:
            raise s3_error(exc, f"upload of {self.repo.describe(self.key)}") from None
        return {"ETag": resp["ETag"], "PartNumber": number}

    def commit(self) -> None:
        where = self.repo.describe(self.key)
        try:
            if self._filled or not (self._parts or self._pending):
                self._upload(b"".join(self._chunks))  # the last part may be under 5 MiB
            self._chunks.clear()
            self._filled = 0
            while self._pending:
                self._parts.append(self._pending.popleft().result())
            if self.repo.stat(self.key) is not None:
                raise StorageError(f"{where} already exists; refusing to overwrite it")
            self.repo.client.complete_multipart_upload(
                Bucket=self.repo.bucket,
                Key=self.full,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": sorted(self._parts, key=lambda p: p["PartNumber"])},
            )
            self._upload_id = None
        except (ClientError, BotoCoreError) as exc:
            self.abort()
            raise s3_error(exc, f"upload of {where}") from None
        except BaseException:
            self.abort()
            raise
        finally:
            self._pool.shutdown(wait=True)

    def abort(self) -> None:
        for fut in self._pending:
            fut.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pending.clear()
        self._chunks.clear()
        self._filled = 0
        if self._upload_id is not None:
            upload_id, self._upload_id = self._upload_id, None
            # If the server is gone, `rfbackup list` shows the upload as abandoned and the
            # next run aborts it.
            with contextlib.suppress(ClientError, BotoCoreError):
                self.repo.client.abort_multipart_upload(
                    Bucket=self.repo.bucket, Key=self.full, UploadId=upload_id
                )
