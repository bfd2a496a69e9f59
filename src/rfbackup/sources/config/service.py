"""Taking a configuration backup only when something changed, and restoring one by clone."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rfbackup import catalog
from rfbackup.errors import ConfigError, IntegrityError, RestoreError
from rfbackup.logs import log
from rfbackup.sources.config.gitbundle import COMPONENT, PREFIX, GitConfig

if TYPE_CHECKING:
    from rfbackup.config import Settings
    from rfbackup.storage import Repository


def newest(repo: Repository, subject: str | None = None) -> catalog.Entry | None:
    for e in catalog.scan(repo, prefix=PREFIX):
        m = e.manifest
        if e.good and m is not None and m.component == COMPONENT and subject in (None, m.subject):
            return e
    return None


def backup(
    settings: Settings, path: Path, with_cluster: bool = False, api: Any = None
) -> dict[str, Any]:
    """A bundle of every ref of ``path`` if one changed since the newest bundle; else nothing.
    ``with_cluster``: first commit the cluster's ConfigMaps and encrypted Secrets (cluster.py)."""
    from rfbackup.engine import job

    if with_cluster:
        from rfbackup.sources.config import cluster

        files, versions = cluster.snapshot(settings, api)
        made = cluster.commit(path, settings.mode.namespace, files, versions)
        log.info(
            "cluster state of %s: %s",
            settings.mode.namespace,
            f"new commit {made[:12]} on {cluster.BRANCH}" if made else "unchanged",
        )
    source = GitConfig(path)
    repo = settings.open_repository()
    source.prepare(repo)
    last = newest(repo, source.subject())
    previous = last.manifest.section("git") if last and last.manifest else None
    if last is not None and previous and not source.changed_since(previous):
        log.info("%s unchanged since %s: nothing to do", source.path, last.name)
        return {"changed": False, "name": last.name, "sha256": last.sha256}
    result = job.run(settings, source)
    return {"changed": True, **result.to_dict()}


def verify_bundle(path: Path, expected: dict[str, str]) -> None:
    """``git bundle verify`` (in an empty repository: a bundle needing no other commits),
    and its heads equal to the refs the manifest recorded."""
    empty = path.parent / "verify.git"
    subprocess.run(["git", "init", "-q", "--bare", str(empty)], capture_output=True, check=True)
    proc = subprocess.run(
        ["git", "-C", str(empty), "bundle", "verify", "-q", str(path)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise IntegrityError(f"git bundle verify failed: {proc.stderr.strip()[:200]}")
    heads = subprocess.run(
        ["git", "bundle", "list-heads", str(path)], capture_output=True, text=True, check=True
    ).stdout
    found = {name: oid for oid, _, name in (ln.partition(" ") for ln in heads.splitlines())}
    # Only refs/...: `--all` also lists HEAD and the HEADs of linked worktrees.
    if {k: v for k, v in found.items() if k.startswith("refs/")} != {
        k: v for k, v in expected.items() if k.startswith("refs/")
    }:
        raise IntegrityError("the bundle's refs differ from those its manifest recorded")


def fetch_bundle(
    settings: Settings, name: str, folder: Path, repo_url: str | None = None
) -> tuple[Path, dict[str, Any]]:
    """The verified bundle (sha256, signature, decrypted) as a file in ``folder``."""
    from rfbackup.engine.fetch import open_verified, plaintext

    loc, m, identities = open_verified(settings, name, component=COMPONENT, repo_url=repo_url)
    path = folder / "config.bundle"
    with (
        loc.repo.open(loc.key) as raw,
        plaintext(loc, raw, identities) as clear,
        open(path, "wb") as out,
    ):
        shutil.copyfileobj(clear, out, 1024 * 1024)
    git = m.section("git")
    verify_bundle(path, dict(git.get("refs") or {}))
    return path, {"backup": loc.key, "sha256": m.sha256, "refs": len(git.get("refs") or {}) - 1}


def restore(settings: Settings, name: str, dest: Path) -> dict[str, Any]:
    """Clone the bundle ``name`` into ``dest`` (which must not exist, or be empty)."""
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ConfigError(f"{dest} exists and is not empty: choose a new folder")
    if not dest.parent.is_dir():
        raise ConfigError(f"{dest.parent} does not exist")
    with tempfile.TemporaryDirectory(prefix="rfbackup-config-", dir=settings.tmp_dir) as tmp:
        path, facts = fetch_bundle(settings, name, Path(tmp))
        proc = subprocess.run(
            ["git", "clone", "-q", str(path), str(dest)], capture_output=True, text=True
        )
        if proc.returncode == 0:  # every branch and tag as a local ref, as in the original
            proc = subprocess.run(
                ["git", "-C", str(dest), "fetch", "-q", "--update-head-ok", str(path),
                 "refs/heads/*:refs/heads/*", "refs/tags/*:refs/tags/*"],
                capture_output=True,
                text=True,
            )  # fmt: skip
        if proc.returncode != 0:
            shutil.rmtree(dest, ignore_errors=True)
            raise RestoreError(f"git clone failed: {proc.stderr.strip()[:200]}")
    subprocess.run(["git", "-C", str(dest), "remote", "remove", "origin"], capture_output=True)
    return {**facts, "destination": str(dest)}
