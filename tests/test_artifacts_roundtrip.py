"""Artifact snapshots restore byte for byte, with their metadata, locally and from S3."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from artifacts_support import Repo, make_repo, walk, write

from rfbackup.sandbox.seaweedfs import ThrowawayS3


def odd_tree(root: Path) -> None:
    write(root / "empty.bin", b"")
    write(root / "one.bin", b"x")
    write(root / "spaces in name.txt", b"spaces\n", 0o600)
    write(root / "new\nline", b"newline in the name\n")
    write(root / "-leading-dash", b"dash\n")
    write(root / "ünïcødé ✓.json", b'{"ok": true}')
    write(root / "models" / "checkpoint.pt", os.urandom(3 * 1024 * 1024 + 17), 0o600)
    write(root / "models" / "run.sh", b"#!/bin/sh\necho hi\n", 0o755)
    os.link(root / "models" / "checkpoint.pt", root / "models" / "hardlink.pt")
    (root / "empty-dir" / "nested-empty").mkdir(parents=True)
    shared = root / "shared"
    shared.mkdir()
    shared.chmod(0o2775)  # setgid folder
    write(shared / "note.md", b"# note\n" * 100)
    os.symlink("../models/checkpoint.pt", shared / "link-to-checkpoint")
    os.symlink("/nonexistent/dangling", shared / "dangling")
    for i in range(300):
        write(root / "many" / f"{i:04d}.json", f'{{"i": {i}}}\n'.encode())
    os.mkfifo(root / "a-fifo")  # skipped with a warning, not an error
    sparse = root / "sparse.img"
    with open(sparse, "wb") as fh:
        fh.truncate(64 * 1024 * 1024)
        fh.seek(10 * 1024 * 1024)
        fh.write(b"middle")
    with open(
        os.open(
            root / (b"bytes-\xff-name".decode("utf-8", "surrogateescape")),
            os.O_CREAT | os.O_WRONLY,
            0o644,
        ),
        "wb",
    ) as fh:
        fh.write(b"not utf-8\n")
    os.chown(root / "one.bin", 1234, 5678)
    os.utime(root / "one.bin", ns=(1, 1_234_567_891_123_456_789))


def check_round_trip(repo: Repo, tmp_path: Path) -> None:
    src = tmp_path / "data"
    odd_tree(src)
    snap = repo.backup(src)
    assert not snap["partial"]
    dest = tmp_path / "restored"
    r = repo.restore(snap["id"], dest)
    assert r.returncode == 0, r.stderr
    expected = walk(src)
    expected.pop("a-fifo")
    assert walk(dest / "data") == expected
    assert (
        dest / "data" / "sparse.img"
    ).stat().st_blocks * 512 <= 8 * 1024 * 1024  # holes stay holes
    assert (dest / "data" / "one.bin").stat().st_uid == 1234


def test_round_trip_local(tmp_path: Path) -> None:
    check_round_trip(make_repo(tmp_path), tmp_path)


def test_round_trip_s3(tmp_path: Path, s3: ThrowawayS3) -> None:
    check_round_trip(make_repo(tmp_path, s3), tmp_path)


def test_subpath_refusals_and_overwrite(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    src = tmp_path / "vol"
    write(src / "a" / "b" / "file.txt", b"content\n")
    write(src / "top.txt", b"top\n")
    snap = repo.backup(src)["id"]

    dest = tmp_path / "dest"
    r = repo.restore(snap[:8], dest, "--path", "vol/a")
    assert r.returncode == 0, r.stderr
    assert (dest / "vol" / "a" / "b" / "file.txt").read_bytes() == b"content\n"
    assert not (dest / "vol" / "top.txt").exists()

    r = repo.restore(snap, dest)
    assert r.returncode == 3 and "not empty" in r.stderr and "--overwrite" in r.stderr
    (dest / "vol" / "a" / "b" / "file.txt").write_bytes(b"changed locally\n")
    r = repo.restore(snap, dest, "--overwrite")
    assert r.returncode == 0, r.stderr
    assert (dest / "vol" / "a" / "b" / "file.txt").read_bytes() == b"content\n"
    assert (dest / "vol" / "top.txt").read_bytes() == b"top\n"
    assert not [p for p in dest.rglob("*") if ".rfbackup-restore-" in p.name]

    for bad in ("vol/../..", "vol/nothere"):
        r = repo.restore(snap, tmp_path / "other", "--path", bad)
        assert r.returncode in (3, 7), r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    r = repo.restore("ffffffff", tmp_path / "other")
    assert r.returncode == 7 and "no artifact snapshot" in r.stderr


def test_overwrite_replaces_links_and_reports_folders_in_the_way(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    src = tmp_path / "vol"
    write(src / "file.txt", b"from the snapshot\n")
    os.symlink("file.txt", src / "link")
    os.symlink("file.txt", src / "blocked")
    snap = repo.backup(src)["id"]
    dest = tmp_path / "dest"
    outside = tmp_path / "outside"
    outside.mkdir()
    (dest / "vol").mkdir(parents=True)
    os.symlink(outside, dest / "vol" / "link")  # a symlink to a folder where a symlink goes
    os.symlink(outside / "victim", dest / "vol" / "file.txt")  # and where a file goes
    (dest / "vol" / "blocked").mkdir()
    r = repo.restore(snap, dest, "--overwrite")
    assert r.returncode == 6 and "vol/blocked: a folder is in the way" in r.stderr, r.stderr
    assert os.readlink(dest / "vol" / "link") == "file.txt"
    assert (dest / "vol" / "file.txt").read_bytes() == b"from the snapshot\n"
    assert not (dest / "vol" / "file.txt").is_symlink()
    assert list(outside.iterdir()) == []


def test_very_deep_tree(tmp_path: Path) -> None:
    """Deeper than Python's default recursion limit allows, in both directions."""
    repo = make_repo(tmp_path)
    src = tmp_path / "deep"
    os.makedirs(src)
    fd = os.open(src, os.O_RDONLY)
    for _ in range(1500):  # relative to an open folder: no path gets too long to create
        os.mkdir("d", dir_fd=fd)
        nxt = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = nxt
    with open(os.open("leaf.txt", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=fd), "wb") as fh:
        fh.write(b"bottom\n")
    os.close(fd)
    dest = tmp_path / "out"
    try:
        snap = repo.backup(src)
        assert snap["stats"]["dirs"] == 1501 and not snap["partial"]
        r = repo.restore(snap["id"], dest)
        assert r.returncode == 0, r.stderr[-500:]
        leaf = dest / "deep" / Path(*["d"] * 1500) / "leaf.txt"
        assert leaf.read_bytes() == b"bottom\n"
    finally:  # pytest's own clean-up of old runs recurses, and would fail on these trees
        subprocess.run(["rm", "-rf", str(src), str(dest)], check=True)
