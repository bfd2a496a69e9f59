"""A hostile bucket: changed packs, snapshots and indexes are caught with a clear error, and a
forged tree (even one made with the writer key) never writes outside DEST."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyrage
from artifacts_support import Repo, make_repo, walk, write

from rfbackup.encryption import parse_recipients
from rfbackup.sources.artifacts import index as index_mod
from rfbackup.sources.artifacts.keys import WriterKey
from rfbackup.sources.artifacts.packs import TREE, PackWriter, compress
from rfbackup.sources.artifacts.store import open_writer
from rfbackup.sources.artifacts.tree import encode_tree, new_snapshot, write_snapshot
from rfbackup.storage.local import LocalRepository


def flip(repo: Repo, key: str, at: int) -> None:
    data = bytearray(repo.read(key))
    data[at % len(data)] ^= 0x40
    repo.write(key, bytes(data))


def keys(repo: Repo, part: str) -> list[str]:
    return sorted(k for k in repo.objects() if f"/{part}/" in k)


def test_flipped_byte_in_pack_fails_only_that_file(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, RFBACKUP_ARTIFACTS__PACK_SIZE_MB="1")
    src = tmp_path / "vol"
    write(src / "big.bin", os.urandom(3 * 1024 * 1024))
    write(src / "fine.txt", b"fine\n")
    snap = repo.backup(src)["id"]
    big_pack = max(keys(repo, "packs"), key=lambda k: repo.objects()[k])
    flip(repo, big_pack, 5000)

    assert repo.run("artifacts", "check").returncode == 0  # structure is intact
    r = repo.run("artifacts", "check", "--read-data-subset", "100%")
    assert r.returncode == 6, r.stderr
    assert "vol/big.bin" in r.stderr and "chunk " in r.stderr

    dest = tmp_path / "out"
    r = repo.restore(snap, dest)
    assert r.returncode == 6 and "vol/big.bin" in r.stderr, r.stderr
    assert (dest / "vol" / "fine.txt").read_bytes() == b"fine\n"
    assert sorted(p.name for p in (dest / "vol").iterdir()) == ["fine.txt"]


def test_changed_or_forged_snapshot_and_index_are_refused(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    src = tmp_path / "vol"
    write(src / "a.txt", b"a\n")
    snap = repo.backup(src)["id"]

    # someone with the public recipient forges a snapshot: it does not match its name
    public = repo.writer["RFBACKUP_ENCRYPTION__RECIPIENTS"]
    fake = json.dumps({"format": "rfbackup-artifacts-snapshot/1", "root": "00" * 32}).encode()
    forged = "ab" * 16
    path = Path(repo.url) / "artifacts" / "snapshots" / forged
    path.write_bytes(pyrage.encrypt(fake, parse_recipients([public])))
    r = repo.restore(forged[:8], tmp_path / "x")
    assert r.returncode == 6 and "does not match its name" in r.stderr, r.stderr
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())
    path.unlink()

    flip(repo, keys(repo, "snapshots")[0], 200)
    r = repo.restore(snap, tmp_path / "y")
    assert r.returncode == 6 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = repo.run("artifacts", "prune", "--keep-days", "0", "--keep-min", "0")
    assert r.returncode == 6, r.stderr  # never deletes on doubt
    assert keys(repo, "packs")


def test_tampered_index_is_reported(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    src = tmp_path / "vol"
    write(src / "a.txt", b"a\n")
    repo.backup(src)
    flip(repo, keys(repo, "index")[0], 40)
    r = repo.run("artifacts", "check")
    assert r.returncode == 6 and "index" in r.stderr, r.stderr
    r = repo.run("artifacts", "prune", "--keep-days", "0", "--keep-min", "0")
    assert r.returncode == 6 and keys(repo, "packs"), r.stderr


def forge(repo: Repo, tmp_path: Path, entries: list[dict[str, object]]) -> str:
    """A snapshot made with the writer key itself (a compromised backup job)."""
    recipients = parse_recipients([repo.writer["RFBACKUP_ENCRYPTION__RECIPIENTS"]])
    key = WriterKey.load(Path(repo.writer["RFBACKUP_ARTIFACTS__KEY_FILE"]))
    store = open_writer(LocalRepository(Path(repo.url)), key, recipients)
    found: dict[bytes, object] = {}
    packs = PackWriter(store, 1 << 20, lambda cid, loc: found.__setitem__(cid, loc))
    plain = encode_tree(entries)
    root = key.chunk_id(plain)
    packs.add(root, compress(plain, 3), len(plain), TREE)
    packs.finish()
    index_mod.write(store, found)  # type: ignore[arg-type]
    return write_snapshot(store, new_snapshot(["/forged"], root, False, []))


def test_forged_tree_never_writes_outside_dest(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    base = {"mode": 0o644, "uid": 0, "gid": 0, "mtime_ns": 1}
    evil = [
        [{**base, "name": "../escaped", "type": "file", "size": 0, "chunks": []}],
        [{**base, "name": "/etc", "type": "file", "size": 0, "chunks": []}],
        [
            {**base, "name": "a", "type": "symlink", "target": str(tmp_path)},
            {**base, "name": "a", "type": "file", "size": 0, "chunks": []},
        ],
        [{**base, "name": "h", "type": "file", "size": 0, "chunks": [], "hardlink": "../../x"}],
    ]
    for i, entries in enumerate(evil):
        before = walk(tmp_path)
        snap = forge(repo, tmp_path, entries)
        r = repo.restore(snap, tmp_path / f"dest{i}" / "inner")
        assert r.returncode == 6, r.stderr
        assert "unsafe" in r.stderr or "twice" in r.stderr, r.stderr
        after = walk(tmp_path)
        new = {k for k in after if k not in before and not k.startswith(("repo", f"dest{i}"))}
        assert new == set(), new
        assert not (tmp_path / "escaped").exists()
