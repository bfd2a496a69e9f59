"""``rfbackup drill --component artifacts`` on a real repository: passes on a healthy
snapshot (files and bytes restored, RTO/RPO), fails on a damaged pack, skips with a clear
reason without the age identity (a failure when asked for by --component), and leaves no
scratch folder behind."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from artifacts_support import Repo, make_repo, write


def setup(tmp_path: Path) -> tuple[Repo, Path, dict[str, str]]:
    repo = make_repo(tmp_path, RFBACKUP_ARTIFACTS__PACK_SIZE_MB="1")
    src = tmp_path / "vol"
    write(src / "big.bin", os.urandom(3 * 1024 * 1024))
    write(src / "sub" / "fine.txt", b"fine\n")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    return repo, src, {"RFBACKUP_TMP_DIR": str(scratch)}


def drill(repo: Repo, side: str = "reader", **extra: str) -> tuple[int, dict[str, Any], str]:
    r = repo.run("drill", "--component", "artifacts", "--json", side=side, **extra)
    doc = json.loads(r.stdout) if r.stdout.strip() else {}
    return r.returncode, doc, r.stderr


def test_healthy_snapshot_passes_and_leaves_nothing(tmp_path: Path) -> None:
    repo, src, extra = setup(tmp_path)
    snap = repo.backup(src)["id"]

    code, doc, err = drill(repo, **extra)

    assert code == 0, err
    (c,) = doc["components"]
    assert c["status"] == "passed", c
    assert c["backup"] == f"artifacts/{snap}"
    assert c["facts"]["files"] == 2 and c["facts"]["bytes"] == 3 * 1024 * 1024 + 5
    assert c["rto_seconds"] > 0 and c["rpo_seconds"] >= 0
    assert list((tmp_path / "scratch").iterdir()) == []


def test_damaged_pack_fails(tmp_path: Path) -> None:
    repo, src, extra = setup(tmp_path)
    repo.backup(src)
    packs = {k: v for k, v in repo.objects().items() if "/packs/" in k}
    big = max(packs, key=lambda k: packs[k])
    data = bytearray(repo.read(big))
    data[5000] ^= 0x40
    repo.write(big, bytes(data))

    code, doc, _err = drill(repo, **extra)

    assert code != 0
    (c,) = doc["components"]
    assert c["status"] == "failed" and "big.bin" in " ".join(c["issues"]), c
    assert list((tmp_path / "scratch").iterdir()) == []


def test_without_identity_it_says_why(tmp_path: Path) -> None:
    repo, src, extra = setup(tmp_path)
    repo.backup(src)

    code, doc, _err = drill(repo, side="writer", **extra)  # asked for: not run is a failure

    assert code != 0
    (c,) = doc["components"]
    assert "set RFBACKUP_ENCRYPTION__IDENTITY_FILE" in c["issues"][0], c["issues"]
