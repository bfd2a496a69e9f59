"""One contract, run against every repository backend."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rfbackup.errors import NotFound, StorageError
from rfbackup.storage import Repository, put_bytes, read_bytes
from rfbackup.storage.local import LocalRepository

BACKENDS: dict[str, Callable[[Path], Repository]] = {"local": lambda p: LocalRepository(p)}


@pytest.fixture(params=sorted(BACKENDS))
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Repository:
    return BACKENDS[request.param](tmp_path / "repo")


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
