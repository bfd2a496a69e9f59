"""wal-push reads each file into a buffer its thread reuses: what it returns is always exactly
the file's bytes, whatever the thread read before, and a file that grows is read whole."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from rfbackup.pitr import walpack
from rfbackup.pitr.walpack import read_reused


def test_each_read_is_exactly_the_file_whatever_came_before(tmp_path: Path) -> None:
    big, small, bigger = tmp_path / "big", tmp_path / "small", tmp_path / "bigger"
    big.write_bytes(b"a" * 100_000)
    small.write_bytes(b"b" * 10)
    bigger.write_bytes(bytes(range(256)) * 1000)
    first = read_reused(big).tobytes()
    second = read_reused(small).tobytes()  # no tail of the bigger file before it
    third = read_reused(bigger).tobytes()  # a larger buffer replaces the first
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert (first, second, third) == (big.read_bytes(), small.read_bytes(), bigger.read_bytes())
    assert read_reused(empty).tobytes() == b""


def test_threads_do_not_share_a_buffer(tmp_path: Path) -> None:
    files = []
    for i in range(8):
        f = tmp_path / f"f{i}"
        f.write_bytes(bytes([i]) * (50_000 + i))
        files.append(f)
    wrong: list[str] = []

    def reader(f: Path) -> None:
        for _ in range(50):
            view = read_reused(f)
            if view.tobytes() != f.read_bytes():
                wrong.append(f.name)

    threads = [threading.Thread(target=reader, args=(f,)) for f in files]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []


def test_a_file_that_grows_while_read_is_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = tmp_path / "growing"
    f.write_bytes(b"x" * 1000)
    real_fstat = os.fstat

    def stale_fstat(fd: int) -> Any:  # the size seen before PostgreSQL (or anyone) appended more
        st = real_fstat(fd)
        return type("S", (), {"st_size": st.st_size - 500})()

    monkeypatch.setattr(os, "fstat", stale_fstat)
    monkeypatch.setattr(walpack._thread, "buffer", None, raising=False)  # sized from fstat
    assert read_reused(f).tobytes() == b"x" * 1000
