"""One contract, run against every repository backend."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import new_bucket

from rfbackup.errors import NotFound, StorageError
from rfbackup.sandbox.seaweedfs import ThrowawayS3
from rfbackup.storage import Repository, open_repository, put_bytes, read_bytes
from rfbackup.storage.s3 import S3Settings


def s3_settings(server: ThrowawayS3, **kw: int) -> S3Settings:
    return S3Settings(
        endpoint_url=server.endpoint,
        region=server.region,
        access_key_id=server.access_key,
        secret_access_key=server.secret_key,
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture(params=["local", "s3"])
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Repository:
    if request.param == "local":
        return open_repository(str(tmp_path / "repo"))
    server: ThrowawayS3 = request.getfixturevalue("s3")
    return open_repository(f"s3://{new_bucket(server)}/some/prefix", s3_settings(server))


def test_commit_makes_an_object_visible(repo: Repository) -> None:
    w = repo.writer("a/b.bin")
    w.write(b"hello ")
    assert [o.key for o in repo.list()] == []
    assert repo.stat("a/b.bin") is None
    w.write(b"world")
    w.commit()
    assert read_bytes(repo, "a/b.bin") == b"hello world"
    info = repo.stat("a/b.bin")
    assert info is not None and info.size == 11 and not info.partial


def test_abort_leaves_no_trace(repo: Repository) -> None:
    w = repo.writer("x.bin")
    w.write(b"data")
    w.abort()
    assert list(repo.list(include_partial=True)) == []


def test_partial_writes_are_listed_only_on_request(repo: Repository) -> None:
    w = repo.writer("x.bin")
    w.write(b"data")
    assert list(repo.list()) == []
    partial = list(repo.list(include_partial=True))
    assert [(o.key, o.partial) for o in partial] == [("x.bin", True)]
    repo.discard_partial("x.bin")
    assert list(repo.list(include_partial=True)) == []


def test_list_by_prefix_in_key_order(repo: Repository) -> None:
    for key in ("p/2", "p/1", "q/1", "p/10"):
        put_bytes(repo, key, key.encode())
    assert [o.key for o in repo.list("p/")] == ["p/1", "p/10", "p/2"]
    assert len(list(repo.list())) == 4


def test_existing_objects_are_never_overwritten(repo: Repository) -> None:
    put_bytes(repo, "k", b"first")
    with pytest.raises(StorageError, match="already exists"):
        put_bytes(repo, "k", b"second")
    assert read_bytes(repo, "k") == b"first"
    assert [o.key for o in repo.list(include_partial=True)] == ["k"]


def test_delete_and_missing(repo: Repository) -> None:
    put_bytes(repo, "k", b"v")
    repo.delete(["k", "never-existed"])
    assert repo.stat("k") is None
    with pytest.raises(NotFound):
        repo.open("k")


def test_keys_cannot_escape_the_repository(repo: Repository) -> None:
    with pytest.raises(StorageError):
        repo.writer("../outside")


def test_large_objects_stream_in_parts(repo: Repository) -> None:
    """Bigger than one multipart part (16 MiB by default), written in uneven chunks."""
    import hashlib
    import os

    chunk = os.urandom(3 * 1024 * 1024 + 17)
    w = repo.writer("big")
    for _ in range(7):
        w.write(chunk)
    w.commit()
    with repo.open("big") as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()
    assert digest == hashlib.sha256(chunk * 7).hexdigest()
    assert [o.size for o in repo.list(include_partial=True)] == [len(chunk) * 7]


def test_s3_listing_and_deleting_past_one_page(s3: ThrowawayS3) -> None:
    from concurrent.futures import ThreadPoolExecutor

    repo = open_repository(f"s3://{new_bucket(s3)}/p", s3_settings(s3))
    keys = [f"wal/{i:06d}" for i in range(2500)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: put_bytes(repo, k, b"x"), keys))
    assert [o.key for o in repo.list("wal/")] == keys  # 3 pages of 1,000
    repo.delete(keys[:2400])  # 3 batch requests
    assert [o.key for o in repo.list()] == keys[2400:]


def test_s3_aborted_upload_leaves_no_parts(s3: ThrowawayS3) -> None:
    repo = open_repository(f"s3://{new_bucket(s3)}", s3_settings(s3, part_size=5 * 1024 * 1024))
    w = repo.writer("x")
    w.write(b"y" * (11 * 1024 * 1024))  # two parts uploaded
    assert [o.partial for o in repo.list(include_partial=True)] == [True]
    w.abort()
    assert list(repo.list(include_partial=True)) == []
    assert s3.client().list_multipart_uploads(Bucket=repo.url[5:]).get("Uploads") in (None, [])
