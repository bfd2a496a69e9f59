"""The configuration repository as an engine source: ``git bundle create - --all`` streamed
into the repository (already compressed by git: stored as is, encrypted when configured).
The manifest's source section records every ref, so the next run knows whether anything
changed, and a restore can check the clone."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Generator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rfbackup.engine.source import Keys, SourceBase
from rfbackup.errors import ConfigError, SourceError

if TYPE_CHECKING:
    from rfbackup.storage import Repository

COMPONENT = "config"
PREFIX = "config/"
EXT = ".bundle"
CHUNK = 1024 * 1024


def git(path: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SourceError(f"git {args[0]} in {path} failed: {proc.stderr.strip()[:200]}")
    return proc.stdout


def refs(path: Path) -> dict[str, str]:
    """Every ref and HEAD -> object id (HEAD as ``ref: NAME`` when symbolic)."""
    found: dict[str, str] = {}
    for line in git(path, "for-each-ref", "--format=%(objectname) %(refname)").splitlines():
        oid, _, name = line.partition(" ")
        found[name] = oid
    head = subprocess.run(
        ["git", "-C", str(path), "symbolic-ref", "-q", "HEAD"], capture_output=True, text=True
    )
    found["HEAD"] = (
        f"ref: {head.stdout.strip()}"
        if head.returncode == 0
        else git(path, "rev-parse", "HEAD").strip()
    )
    return found


def fingerprint(found: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(found, sort_keys=True).encode()).hexdigest()


class GitConfig(SourceBase):
    component = COMPONENT
    compression = "zstd"  # a bundle is zlib-compressed already: level 1 costs next to nothing
    level = 1

    def __init__(self, path: Path) -> None:
        self.path = path.resolve()
        self.progress_label = f"bundling {self.path.name}"
        self._refs: dict[str, str] = {}

    def prepare(self, repo: Repository) -> None:
        if not (self.path / ".git").exists() and not (self.path / "HEAD").exists():
            raise ConfigError(f"{self.path} is not a git repository (--git-repo)")
        self._refs = refs(self.path)
        if len(self._refs) <= 1:
            raise SourceError(f"{self.path} has no commits: nothing to back up")

    def changed_since(self, previous: dict[str, Any] | None) -> bool:
        """Did any ref change since the backup whose source section is ``previous``?"""
        if not self._refs:
            self._refs = refs(self.path)
        return previous is None or previous.get("refs_sha256") != fingerprint(self._refs)

    def subject(self) -> str:
        return self.path.name

    def describe(self) -> str:
        return f"git repository {self.path}"

    def keys(self, at: datetime, encrypted: bool, layout: str) -> Keys:
        stem = f"{PREFIX}{self.path.name}_{at.strftime('%Y%m%dT%H%M%SZ')}"
        return Keys(stem, EXT + ".zst", encrypted)

    def owns(self, key: str) -> bool:
        return key.startswith(PREFIX) and EXT in key

    def stream(self) -> Generator[bytes]:
        self._refs = refs(self.path)
        proc = subprocess.Popen(
            ["git", "-C", str(self.path), "bundle", "create", "-q", "-", "--all"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None and proc.stderr is not None
        try:
            while chunk := proc.stdout.read(CHUNK):
                yield chunk
            err = proc.stderr.read().decode(errors="replace").strip()
            if proc.wait() != 0:
                raise SourceError(f"git bundle create failed: {err[:200]}")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if refs(self.path) != self._refs:  # a push during the bundle: take it again next run
            raise SourceError(f"refs of {self.path} changed during the bundle; run it again")

    def section(self) -> dict[str, Any]:
        return {
            "git": {
                "repository": str(self.path),
                "refs": self._refs,
                "refs_sha256": fingerprint(self._refs),
            }
        }

    def summary(self) -> str:
        return f"{len(self._refs) - 1} refs"
