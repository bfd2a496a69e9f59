"""A prune stopped at any of its writes or deletions (a crash, kill -9) leaves a repository
that checks clean, whose kept snapshots restore, and that the next prune finishes."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from artifacts_support import make_repo, walk, write

from rfbackup.encryption import load_identities, parse_recipients
from rfbackup.sources.artifacts.prune import Policy, prune
from rfbackup.sources.artifacts.store import open_reader
from rfbackup.storage.local import LocalRepository


class Crash(BaseException):
    """Stands for the process dying: nothing after it runs."""


class Dying:
    """A real local repository whose ``n``-th write or deletion never happens."""

    def __init__(self, inner: LocalRepository, n: int) -> None:
        self.inner = inner
        self.left = n

    def _step(self) -> None:
        self.left -= 1
        if self.left == 0:
            raise Crash()

    def put(self, key: str, data: bytes) -> None:
        self._step()
        self.inner.put(key, data)

    def delete(self, keys: Any) -> None:
        keys = list(keys)
        self._step()
        self.inner.delete(keys)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_prune_interrupted_at_every_step(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, RFBACKUP_ARTIFACTS__PACK_SIZE_MB="1")
    src = tmp_path / "vol"
    write(src / "keep.bin", os.urandom(1024 * 1024))
    write(src / "old-only.bin", os.urandom(2 * 1024 * 1024))
    repo.backup(src)
    (src / "old-only.bin").unlink()
    write(src / "second.bin", os.urandom(300 * 1024))
    kept = repo.backup(src)["id"]
    expected = walk(src)

    identities = load_identities(Path(repo.reader["RFBACKUP_ENCRYPTION__IDENTITY_FILE"]))
    recipients = parse_recipients([repo.reader["RFBACKUP_ENCRYPTION__RECIPIENTS"]])
    policy = Policy(keep_days=0, keep_min=1, repack_unused=0.1, grace_seconds=0)
    crashed_at = []
    for n in range(1, 50):
        copy = tmp_path / f"copy{n}"
        shutil.copytree(repo.url, copy)
        store = open_reader(Dying(LocalRepository(copy), n), identities, None)
        store.recipients = recipients
        try:
            prune(store, policy, False, 3, 1024 * 1024)
        except Crash:
            crashed_at.append(n)
        else:
            break
        env = {"RFBACKUP_REPOSITORY": str(copy)}
        r = repo.run("artifacts", "check", "--read-data-subset", "100%", "--json", **env)
        assert r.returncode == 0, (n, r.stdout, r.stderr)
        dest = tmp_path / f"out{n}"
        r = repo.run("restore", "artifacts", kept, str(dest), **env)
        assert r.returncode == 0, (n, r.stderr)
        assert walk(dest / "vol") == expected
        env["RFBACKUP_ARTIFACTS__PRUNE_GRACE_HOURS"] = "0"
        args = ("artifacts", "prune", "--keep-days", "0", "--keep-min", "1", "--json")
        done = json.loads(repo.ok(*args, **env))
        assert done["kept"][0]["id"] == kept
        assert repo.run("artifacts", "check", "--read-data-subset", "100%", **env).returncode == 0
        shutil.rmtree(copy)
    assert len(crashed_at) >= 4, crashed_at  # new index, snapshots, old indexes, packs
