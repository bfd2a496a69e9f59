"""The S3 writer uploads parts concurrently: parts land in order, a failed part in a worker
thread aborts the whole upload, and memory stays bounded. Checked with boto3 against a real
SeaweedFS server (an independent oracle, not the repository's own listing)."""

from __future__ import annotations

import hashlib
import os
import threading
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import new_bucket

from rfbackup.errors import StorageError
from rfbackup.sandbox.seaweedfs import ThrowawayS3
from rfbackup.storage.s3 import S3Repository, S3Settings

MiB = 1024 * 1024


def _repo(server: ThrowawayS3, **kw: Any) -> S3Repository:
    settings = S3Settings(
        endpoint_url=server.endpoint,
        region=server.region,
        access_key_id=server.access_key,
        secret_access_key=server.secret_key,
        part_size=5 * MiB,
        **kw,
    )
    return S3Repository(new_bucket(server), "", settings)


def _uploads(server: ThrowawayS3, bucket: str) -> list[Any]:
    return list(server.client().list_multipart_uploads(Bucket=bucket).get("Uploads") or [])


def _keys(server: ThrowawayS3, bucket: str) -> list[str]:
    return [o["Key"] for o in server.client().list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_parts_in_order_from_reused_buffers(s3: ThrowawayS3) -> None:
    """Uneven writes from one reused bytearray (as the compressor gives them) across five
    parts: the object is exactly the bytes written, assembled from five parts."""
    repo = _repo(s3, concurrency=3)
    data = os.urandom(23 * MiB + 123)
    buf = bytearray(3 * MiB + 7)
    w = repo.writer("obj")
    for start in range(0, len(data), len(buf)):
        piece = data[start : start + len(buf)]
        buf[: len(piece)] = piece
        w.write(memoryview(buf)[: len(piece)])
        buf[:] = b"\0" * len(buf)  # the caller reuses its buffer at once
    w.commit()
    got = s3.client().get_object(Bucket=repo.bucket, Key="obj")
    assert hashlib.sha256(got["Body"].read()).hexdigest() == hashlib.sha256(data).hexdigest()
    assert got["ETag"].strip('"').endswith("-5")  # 4 full parts of 5 MiB and the rest
    assert _uploads(s3, repo.bucket) == []


def test_a_failed_part_in_a_worker_aborts_the_upload(s3: ThrowawayS3) -> None:
    repo = _repo(s3, concurrency=2)
    real = repo.client.upload_part
    seen: list[int] = []

    def upload_part(**kw: Any) -> Any:
        seen.append(kw["PartNumber"])
        if kw["PartNumber"] == 2:  # the server refuses one part, in a worker thread
            raise ClientError({"Error": {"Code": "InternalError", "Message": "boom"}}, "UploadPart")
        return real(**kw)

    repo.client.upload_part = upload_part
    w = repo.writer("obj")
    with pytest.raises(StorageError, match="InternalError"):
        for _ in range(40):  # far more than the parts in flight: the failure stops it early
            w.write(os.urandom(MiB))
        w.commit()
    w.abort()  # what every caller does on an error
    assert max(seen) <= 2 + 2 + 1  # not all 8 parts: stopped within the parts in flight
    assert _uploads(s3, repo.bucket) == []
    assert _keys(s3, repo.bucket) == []


def test_interrupt_while_parts_are_in_flight_leaves_nothing(s3: ThrowawayS3) -> None:
    """Ctrl-C while parts are uploading: abort waits for them, then aborts the upload."""
    repo = _repo(s3, concurrency=2)
    real = repo.client.upload_part
    started = threading.Event()

    def upload_part(**kw: Any) -> Any:
        started.set()
        return real(**kw)

    repo.client.upload_part = upload_part
    w = repo.writer("obj")
    try:
        w.write(os.urandom(11 * MiB))  # two parts submitted
        assert started.wait(30)
        raise KeyboardInterrupt
    except KeyboardInterrupt:
        w.abort()
    assert _uploads(s3, repo.bucket) == []
    assert _keys(s3, repo.bucket) == []
    assert not [t for t in threading.enumerate() if t.name.startswith("s3-part")]


def test_memory_is_bounded_by_concurrency(s3: ThrowawayS3) -> None:
    """At most ``concurrency`` parts are uploading while the next one fills."""
    repo = _repo(s3, concurrency=2)
    real = repo.client.upload_part
    lock = threading.Lock()
    active = peak = 0
    gate = threading.Event()

    def upload_part(**kw: Any) -> Any:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        gate.wait(30)
        try:
            return real(**kw)
        finally:
            with lock:
                active -= 1

    repo.client.upload_part = upload_part
    w = repo.writer("obj")
    written = 0

    def produce() -> None:
        nonlocal written
        for _ in range(30):
            w.write(bytes(MiB))
            written += 1

    writer = threading.Thread(target=produce)
    writer.start()
    writer.join(3)
    # Blocked inside the write that completes part 3 (15 MiB): parts 1 and 2 uploading,
    # part 3 waiting for a slot, nothing else held: (concurrency + 1) parts in memory.
    assert writer.is_alive()
    assert written == 14
    gate.set()
    writer.join(60)
    w.commit()
    assert peak == 2
    assert s3.client().head_object(Bucket=repo.bucket, Key="obj")["ContentLength"] == 30 * MiB
