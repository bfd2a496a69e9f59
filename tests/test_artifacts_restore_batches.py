"""A restore streamed in many small batches (limits lowered in-process) gives the same tree:
files spread over batches and folders, hardlinks whose first path is in an earlier batch, a
sparse file, shared chunks, empty files and folders; a damaged small file fails alone."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from artifacts_support import make_repo, walk, write

from rfbackup.cli.common import settings
from rfbackup.sources.artifacts import reader, restore_write, service
from rfbackup.sources.artifacts import restore as restore_mod


def _restore(repo_env: dict[str, str], dest: Path, mp: pytest.MonkeyPatch) -> list[str]:
    for k, v in repo_env.items():
        if k.startswith("RFBACKUP_"):
            mp.setenv(k, v)
    st = service.reader(settings(None, None))
    result = restore_mod.restore(st, reader.resolve(st, "latest"), dest, None, True)
    return result.failed


def _small_limits(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(restore_mod, "BATCH_FILES", 7)
    mp.setattr(restore_mod, "BATCH_CHUNKS", 5)
    mp.setattr(restore_write, "FOLDERS", 2)  # past two folders: paths instead of descriptors
    mp.setattr(restore_write, "DEPTH", 3)
    mp.setattr(restore_write, "SPAN", 64 * 1024)


def test_many_small_batches_restore_the_same_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path)
    src = tmp_path / "vol"
    shared = os.urandom(3 * 1024 * 1024)
    write(src / "a" / "big1.bin", shared + os.urandom(1000))
    write(src / "z" / "big2.bin", os.urandom(500) + shared, mode=0o600)
    for d in range(6):
        for i in range(9):
            write(src / f"d{d}" / f"f{i}.json", f'{{"d": {d}, "i": {i}}}'.encode() * (i + 1))
    write(src / "d0" / "empty", b"")
    (src / "empty-dir").mkdir()
    os.link(src / "d0" / "f1.json", src / "z" / "late-link.json")  # first path much earlier
    with open(src / "d5" / "sparse.img", "wb") as fh:
        fh.truncate(5 * 1024 * 1024)
        fh.seek(2 * 1024 * 1024)
        fh.write(b"middle")
    os.symlink("../d0/f2.json", src / "d3" / "link")
    repo.backup(src)
    _small_limits(monkeypatch)
    dest = tmp_path / "out"
    assert _restore(repo.reader, dest, monkeypatch) == []
    assert walk(dest / "vol") == walk(src)
    assert os.stat(dest / "vol" / "z" / "late-link.json").st_nlink == 2
    left = [p for p in dest.rglob("*") if p.name.startswith(restore_write.TMP)]
    assert left == []


def test_damaged_small_file_fails_alone_and_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path)
    src = tmp_path / "vol"
    for i in range(30):
        write(src / "s" / f"{i:02d}.txt", os.urandom(3000))
    repo.backup(src)
    packs = [k for k in repo.objects() if "/packs/" in k]
    assert len(packs) == 1
    raw = bytearray(repo.read(packs[0]))
    first_blob = 4 + int.from_bytes(raw[:4], "little")  # after the pack's wrapped key
    raw[first_blob + 100] ^= 0xFF  # inside the first blob: the first file of the tree
    repo.write(packs[0], bytes(raw))
    dest = tmp_path / "out"
    write(dest / "vol" / "s" / "00.txt", b"what was there before")
    _small_limits(monkeypatch)
    failed = _restore(repo.reader, dest, monkeypatch)
    assert len(failed) == 1 and failed[0].startswith("vol/s/00.txt: ") and "damaged" in failed[0]
    assert (dest / "vol" / "s" / "00.txt").read_bytes() == b"what was there before"
    for i in range(1, 30):
        name = f"s/{i:02d}.txt"
        assert (dest / "vol" / name).read_bytes() == (src / name).read_bytes()
    assert not [p for p in dest.rglob("*") if p.name.startswith(restore_write.TMP)]
