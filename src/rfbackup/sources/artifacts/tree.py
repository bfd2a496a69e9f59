"""Trees (one per directory) and snapshots, and the checks that make a forged one harmless.

A tree is JSON: ``{"entries": [...]}`` sorted by name. Each entry has ``name``, ``type``
(dir, file, symlink), ``mode``, ``uid``, ``gid``, ``mtime_ns`` and, by type, ``subtree`` (hex),
``size`` and ``chunks`` (hex ids), ``target``; hardlinked files carry ``nlink`` and, after the
first path of a group, ``hardlink`` (that first path, relative to the snapshot root).
Names are file system names decoded with surrogateescape, so any byte string round-trips.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

from rfbackup.errors import IntegrityError
from rfbackup.sources.artifacts.store import SNAPSHOTS, Store
from rfbackup.storage.base import read_bytes

SNAPSHOT_FORMAT = "rfbackup-artifacts-snapshot/1"
TYPES = ("dir", "file", "symlink")


def encode_tree(entries: list[dict[str, Any]]) -> bytes:
    entries.sort(key=lambda e: str(e["name"]))
    return json.dumps({"entries": entries}, separators=(",", ":")).encode()


def valid_name(name: object) -> bool:
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and "/" not in name
        and "\0" not in name
    )


def _hex_ids(value: object, where: str) -> list[bytes]:
    if not isinstance(value, list):
        raise IntegrityError(f"{where}: bad chunk list")
    try:
        ids = [bytes.fromhex(v) for v in value]
    except (TypeError, ValueError):
        raise IntegrityError(f"{where}: bad chunk id") from None
    if any(len(i) != 32 for i in ids):
        raise IntegrityError(f"{where}: bad chunk id")
    return ids


def decode_tree(plain: bytes, where: str) -> list[dict[str, Any]]:
    """The entries of a tree, each checked: a name that could leave the destination, a
    duplicate, an unknown type or a malformed field is refused here, before anything is
    written."""
    try:
        doc = json.loads(plain)
        entries = doc["entries"]
        if not isinstance(entries, list):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise IntegrityError(f"{where}: not a valid tree") from None
    seen: set[str] = set()
    for e in entries:
        if not isinstance(e, dict) or not valid_name(e.get("name")):
            raise IntegrityError(f"{where}: an entry has an unsafe name")
        name = e["name"]
        if name in seen:
            raise IntegrityError(f"{where}: the name {name!r} appears twice")
        seen.add(name)
        if e.get("type") not in TYPES:
            raise IntegrityError(f"{where}: {name!r} has an unknown type")
        for num in ("mode", "uid", "gid", "mtime_ns"):
            if not isinstance(e.get(num), int) or e[num] < 0:
                raise IntegrityError(f"{where}: {name!r} has a bad {num}")
        if e["type"] == "dir":
            e["subtree_id"] = _hex_ids([e.pop("subtree", None)], where)[0]
        elif e["type"] == "file":
            e["chunk_ids"] = _hex_ids(e.pop("chunks", None), where)  # decoded once, kept once
            if not isinstance(e.get("size"), int) or e["size"] < 0:
                raise IntegrityError(f"{where}: {name!r} has a bad size")
            link = e.get("hardlink")
            if link is not None and not (
                isinstance(link, str) and all(valid_name(p) for p in link.split("/"))
            ):
                raise IntegrityError(f"{where}: {name!r} has an unsafe hardlink")
        elif not isinstance(e.get("target"), str) or "\0" in e["target"]:
            raise IntegrityError(f"{where}: {name!r} has a bad link target")
    return entries


@dataclass
class Snapshot:
    id: str
    time: float
    host: str
    paths: list[str]
    root: str  # tree id (hex)
    partial: bool = False
    errors: list[str] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)
    format: str = SNAPSHOT_FORMAT

    def to_doc(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "time": self.time,
            "host": self.host,
            "paths": self.paths,
            "root": self.root,
            "partial": self.partial,
            "errors": self.errors,
            "stats": self.stats,
        }

    def to_dict(self) -> dict[str, Any]:
        from datetime import UTC, datetime

        return {
            "id": self.id,
            "time": datetime.fromtimestamp(self.time, UTC),
            **{k: v for k, v in self.to_doc().items() if k not in ("format", "time")},
        }


def write_snapshot(store: Store, snap: Snapshot) -> str:
    """The commit point: written after every pack and index it needs."""
    plain = json.dumps(snap.to_doc(), sort_keys=True).encode()
    snap.id = store.key.name("snapshot", plain)
    store.repo.put(f"{SNAPSHOTS}{snap.id}", store.age_encrypt(plain))
    return snap.id


def read_snapshot(store: Store, key: str) -> Snapshot:
    where = store.describe(key)
    name = key.rsplit("/", 1)[-1]
    plain = store.age_decrypt(read_bytes(store.repo, key), where)
    if store.key.name("snapshot", plain) != name:
        raise IntegrityError(f"{where}: the snapshot does not match its name (changed or forged)")
    try:
        doc = json.loads(plain)
        if doc["format"] != SNAPSHOT_FORMAT:
            raise ValueError
        _hex_ids([doc["root"]], where)
        return Snapshot(
            id=name,
            time=float(doc["time"]),
            host=str(doc["host"]),
            paths=[str(p) for p in doc["paths"]],
            root=str(doc["root"]),
            partial=bool(doc["partial"]),
            errors=[str(x) for x in doc.get("errors", [])],
            stats={str(k): int(v) for k, v in doc.get("stats", {}).items()},
        )
    except (ValueError, KeyError, TypeError):
        raise IntegrityError(f"{where}: not a valid snapshot") from None


def snapshot_keys(store: Store) -> list[str]:
    return [o.key for o in store.repo.list(SNAPSHOTS)]


def new_snapshot(paths: list[str], root: bytes, partial: bool, errors: list[str]) -> Snapshot:
    return Snapshot("", time.time(), os.uname().nodename, paths, root.hex(), partial, errors)
