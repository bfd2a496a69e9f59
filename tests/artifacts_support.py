"""Shared pieces of the artifact snapshot tests: a repository set-up, trees and a tree walk."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conftest import RFBACKUP, base_env, new_bucket

from rfbackup.sandbox.seaweedfs import ThrowawayS3


@dataclass
class Repo:
    """A repository (local folder or SeaweedFS bucket) with the two sides' environments:
    ``writer`` holds recipients + writer key only; ``reader`` also the age identity."""

    cwd: Path
    writer: dict[str, str]
    reader: dict[str, str]
    url: str
    s3: ThrowawayS3 | None = None
    bucket: str | None = None

    def run(
        self, *args: str, side: str = "reader", **extra: str
    ) -> subprocess.CompletedProcess[str]:
        env = {**(self.reader if side == "reader" else self.writer), **extra}
        return subprocess.run(
            [*RFBACKUP, *args], cwd=self.cwd, env=env, capture_output=True, text=True, timeout=300
        )

    def ok(self, *args: str, side: str = "reader", **extra: str) -> str:
        r = self.run(*args, side=side, **extra)
        assert r.returncode == 0, f"{args}: exit {r.returncode}\n{r.stderr}"
        return r.stdout

    def backup(self, *paths: Path, **extra: str) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(
            self.ok("backup", "artifacts", *map(str, paths), "--json", side="writer", **extra)
        )
        return doc

    def restore(self, snap: str, dest: Path, *more: str) -> subprocess.CompletedProcess[str]:
        return self.run("restore", "artifacts", snap, str(dest), *more)

    def objects(self) -> dict[str, int]:
        """Every object under artifacts/: key -> size."""
        if self.s3 is not None:
            out = {}
            pages = self.s3.client().get_paginator("list_objects_v2")
            for page in pages.paginate(Bucket=self.bucket, Prefix="rf/artifacts/"):
                out.update({o["Key"][3:]: o["Size"] for o in page.get("Contents", [])})
            return out
        root = Path(self.url)
        return {
            str(p.relative_to(root)): p.stat().st_size
            for p in (root / "artifacts").rglob("*")
            if p.is_file()
        }

    def read(self, key: str) -> bytes:
        if self.s3 is not None:
            body = self.s3.client().get_object(Bucket=self.bucket, Key=f"rf/{key}")["Body"]
            return bytes(body.read())
        return (Path(self.url) / key).read_bytes()

    def write(self, key: str, data: bytes) -> None:
        if self.s3 is not None:
            self.s3.client().put_object(Bucket=self.bucket, Key=f"rf/{key}", Body=data)
        else:
            path = Path(self.url) / key
            path.chmod(0o600)
            path.write_bytes(data)


def keypair(tmp: Path, name: str = "identity.txt") -> tuple[str, Path]:
    key = tmp / name
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    public = subprocess.run(
        ["age-keygen", "-y", str(key)], check=True, capture_output=True, text=True
    ).stdout.strip()
    return public, key


def make_repo(tmp: Path, s3: ThrowawayS3 | None = None, **settings: str) -> Repo:
    cwd = tmp / "work"
    cwd.mkdir()
    public, identity = keypair(tmp)
    locks = tmp / "locks"
    locks.mkdir(mode=0o700)
    bucket = None
    if s3 is not None:
        bucket = new_bucket(s3)
        url = f"s3://{bucket}/rf"
        extra = s3.env()
    else:
        url = str(tmp / "repo")
        extra = {}
    writer = {
        **base_env(cwd),
        **extra,
        "RFBACKUP_REPOSITORY": url,
        "RFBACKUP_ENCRYPTION__RECIPIENTS": public,
        "RFBACKUP_ARTIFACTS__KEY_FILE": str(tmp / "writer.key"),
        "RFBACKUP_LOCKS__DIR": str(locks),
        **settings,
    }
    reader = {**writer, "RFBACKUP_ENCRYPTION__IDENTITY_FILE": str(identity)}
    repo = Repo(cwd, writer, reader, url, s3, bucket)
    repo.ok("artifacts", "init", side="writer")
    return repo


def write(path: Path, data: bytes, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)
    return path


def walk(root: Path) -> dict[str, tuple[Any, ...]]:
    """Everything a restore must reproduce, per relative path: type, mode, mtime (ns),
    content hash, link target, link count, owner."""
    out: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p), st.st_uid, st.st_gid, st.st_mtime_ns)
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode), st.st_mtime_ns, st.st_uid, st.st_gid)
            elif not stat.S_ISREG(st.st_mode):
                out[rel] = ("special",)
            else:
                with open(p, "rb") as fh:
                    digest = hashlib.file_digest(fh, "sha256").hexdigest()
                out[rel] = (
                    "file",
                    stat.S_IMODE(st.st_mode),
                    st.st_mtime_ns,
                    digest,
                    st.st_size,
                    st.st_nlink,
                    st.st_uid,
                    st.st_gid,
                )
    return out
