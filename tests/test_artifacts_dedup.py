"""Deduplication: an unchanged tree is not read again, a small change stores about one chunk,
a renamed file stores nothing new but trees."""

from __future__ import annotations

import os
from pathlib import Path

from artifacts_support import make_repo, walk, write


def test_unchanged_small_change_and_rename(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    src = tmp_path / "vol"
    big = write(src / "big.bin", os.urandom(12 * 1024 * 1024))
    for i in range(50):
        write(src / "small" / f"{i}.txt", os.urandom(2000))
    first = repo.backup(src)
    assert first["stats"]["read_bytes"] == first["stats"]["bytes"]
    packs_before = sum(1 for k in repo.objects() if "/packs/" in k)

    again = repo.backup(src)
    st = again["stats"]
    assert st["read_bytes"] == 0 and st["unchanged_files"] == 51
    assert st["new_chunks"] == 0 and st["stored_bytes"] == 0
    assert sum(1 for k in repo.objects() if "/packs/" in k) == packs_before

    with open(big, "r+b") as fh:  # one byte in the middle of 12 MiB
        fh.seek(6 * 1024 * 1024)
        fh.write(b"\x00" if fh.read(1) != b"\x00" else b"\x01")
    changed = repo.backup(src)["stats"]
    assert changed["read_bytes"] == 12 * 1024 * 1024  # only that file was read again
    assert changed["unchanged_files"] == 50
    data_added = changed["added_bytes"]
    assert data_added < 4.5 * 1024 * 1024, data_added  # ~one chunk (+ trees), not 12 MiB

    os.rename(big, src / "renamed.bin")
    renamed = repo.backup(src)["stats"]
    assert renamed["added_bytes"] < 64 * 1024, renamed  # trees only

    dest = tmp_path / "out"
    r = repo.restore("latest", dest)
    assert r.returncode == 0, r.stderr
    assert walk(dest / "vol") == walk(src)
