"""Unreadable, vanished and changing files: a partial snapshot is marked, exits non-zero, and
never counts toward keep-min."""

from __future__ import annotations

import json
from pathlib import Path

from artifacts_support import make_repo, write


def test_unreadable_file_makes_a_partial_snapshot(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    src = tmp_path / "vol"
    write(src / "a.txt", b"a\n")
    complete = repo.backup(src)["id"]

    # /proc/self/mem is a regular file whose first page cannot be read (EIO), even by root
    r = repo.run("backup", "artifacts", str(src), "/proc/self/mem", "--json", side="writer")
    assert r.returncode == 4, r.stderr
    assert "partial" in r.stderr and len(r.stderr.strip().splitlines()) >= 1
    partial = json.loads(r.stdout)
    assert partial["partial"] and any(e.startswith("mem:") for e in partial["errors"])

    listed = {s["id"]: s["partial"] for s in json.loads(repo.ok("artifacts", "list", "--json"))}
    assert listed == {complete: False, partial["id"]: True}

    out = json.loads(repo.ok("artifacts", "prune", "--keep-days", "0", "--keep-min", "1", "--json"))
    assert [k["id"] for k in out["kept"]] == [complete]  # the newer, partial one does not count
    assert out["forgotten"] == [partial["id"]]
    dest = tmp_path / "out"
    assert repo.restore(complete, dest).returncode == 0
    assert (dest / "vol" / "a.txt").read_bytes() == b"a\n"


def test_file_changing_while_read_is_recorded(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    # /proc files say size 0 and then return text: the size read differs from the size seen
    snap = repo.backup(Path("/proc/self/status"))
    assert snap["stats"]["changed_while_read"] == 1 and not snap["partial"]
    again = repo.backup(Path("/proc/self/status"))
    assert again["stats"]["unchanged_files"] == 0  # not trusted: read again next time


def test_missing_path_argument_is_an_error(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    src = tmp_path / "vol"
    write(src / "a.txt", b"a\n")
    r = repo.run("backup", "artifacts", str(src), str(tmp_path / "gone"), side="writer")
    assert r.returncode == 4 and "does not exist" in r.stderr  # a missing argument is an error
