"""``rfbackup restore artifacts``: a snapshot (or a subpath of it) into a destination folder.

Every name comes from an authenticated tree and is checked again (no ``..``, no ``/``, no
duplicates); every path is built under DEST from those names, folders are checked to be real
folders (never symlinks), files are opened with O_NOFOLLOW, and symlinks are made last. Each
chunk is checked against its keyed hash before it is written. A file is written under a
temporary name and renamed into place only when complete: a damaged chunk fails that file
(an existing file at that path is left as it was) and the rest is still restored.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rfbackup.errors import ConfigError, IntegrityError, NotFound
from rfbackup.logs import log
from rfbackup.progress import Reporter
from rfbackup.sources.artifacts import reader
from rfbackup.sources.artifacts.index import Index
from rfbackup.sources.artifacts.restore_write import Entry, tmp_name, write_batch
from rfbackup.sources.artifacts.store import Store
from rfbackup.sources.artifacts.tree import Snapshot, valid_name

BATCH_FILES = 4096  # files written per batch: memory stays flat however large the tree
BATCH_CHUNKS = 8192


@dataclass
class RestoreResult:
    snapshot: str
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    hardlinks: int = 0
    bytes: int = 0
    failed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _walk(store: Store, idx: Index, tree_id: bytes, rel: str) -> Iterator[tuple[str, Entry]]:
    """Entries under a tree, parents before children, in the order the backup stored them
    (so in pack order), one tree in memory at a time, without recursion."""
    stack = [(tree_id, rel)]
    while stack:
        tid, where = stack.pop()
        subdirs = []
        for e in reader.tree(store, idx.entries, tid):
            path = f"{where}/{e['name']}" if where else e["name"]
            yield path, e
            if e["type"] == "dir":
                subdirs.append((e["subtree_id"], path))
        stack.extend(reversed(subdirs))


def _select(
    store: Store, idx: Index, snap: Snapshot, sub: str | None
) -> tuple[Iterator[tuple[str, Entry]], str]:
    """The entries to restore (streamed) and the parent folders of the subpath."""
    root = bytes.fromhex(snap.root)
    if not sub:
        return _walk(store, idx, root, ""), ""
    parts = [p for p in sub.strip("/").split("/") if p]
    if not parts or not all(valid_name(p) for p in parts):
        raise ConfigError(f"--path {sub!r}: give a path inside the snapshot, such as data/models")
    tree_id, entry = root, None
    for i, part in enumerate(parts):
        if entry is not None:
            if entry["type"] != "dir":
                raise NotFound(f"{'/'.join(parts[:i])} is not a folder in snapshot {snap.id[:8]}")
            tree_id = entry["subtree_id"]
        found = [e for e in reader.tree(store, idx.entries, tree_id) if e["name"] == part]
        if not found:
            raise NotFound(f"{'/'.join(parts[: i + 1])} is not in snapshot {snap.id[:8]}")
        entry = found[0]
    assert entry is not None
    path = "/".join(parts)
    top = entry

    def entries() -> Iterator[tuple[str, Entry]]:
        yield path, top
        if top["type"] == "dir":
            yield from _walk(store, idx, top["subtree_id"], path)

    # parent folders of the subpath are made as plain folders
    return entries(), "/".join(parts[:-1])


def check_destination(dest: Path, overwrite: bool) -> None:
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise ConfigError(f"{dest} exists and is not a folder")
    if dest.exists() and any(dest.iterdir()) and not overwrite:
        raise ConfigError(f"{dest} is not empty: choose an empty folder, or pass --overwrite")


def _real_dir(path: str) -> None:
    """Make ``path`` a real folder: an existing symlink or file in its place is removed."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        os.mkdir(path, 0o700)
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(path)
        os.mkdir(path, 0o700)


def _meta(path: str, e: dict[str, Any], is_link: bool = False) -> None:
    if os.geteuid() == 0:
        os.lchown(path, e["uid"], e["gid"])
    if not is_link:
        os.chmod(path, e["mode"] & 0o7777)
    os.utime(path, ns=(e["mtime_ns"], e["mtime_ns"]), follow_symlinks=False)


def restore(
    store: Store, snap: Snapshot, dest: Path, sub: str | None, overwrite: bool
) -> RestoreResult:
    """Streams the tree: folders are made as they come, files written in bounded batches,
    hardlinks and symlinks made after every file, folder metadata last (deepest first)."""
    check_destination(dest, overwrite)
    idx = Index.load(store, strict=False)
    entries, parent = _select(store, idx, snap, sub)
    result = RestoreResult(snap.id)
    dest.mkdir(parents=True, exist_ok=True, mode=0o700)
    base = str(dest.resolve())

    def at(rel: str) -> str:
        return os.path.join(base, *rel.split("/"))

    if parent:
        so_far = []
        for part in parent.split("/"):
            so_far.append(part)
            _real_dir(at("/".join(so_far)))
    dirs: list[tuple[str, Entry]] = []
    links: list[tuple[str, Entry]] = []
    symlinks: list[tuple[str, Entry]] = []
    leaders: set[str] = set()  # hardlinked files written: the targets of later links
    batch: list[tuple[str, Entry]] = []
    chunks = 0
    total = None if sub else snap.stats.get("bytes")
    with Reporter("restoring", total) as progress:

        def flush() -> None:
            done, failed = write_batch(store, idx.entries.get, batch, at, progress)
            for rel, e in done:
                result.files += 1
                result.bytes += e["size"]
                if "nlink" in e:
                    leaders.add(rel)
            for rel, why in failed.items():
                log.error("not restored: %s: %s", rel, why)
                result.failed.append(f"{rel}: {why}")
            batch.clear()

        for rel, e in entries:
            kind = e["type"]
            if kind == "dir":
                _real_dir(at(rel))
                result.dirs += 1
                dirs.append((rel, {k: e[k] for k in ("mode", "uid", "gid", "mtime_ns")}))
            elif kind == "symlink":
                symlinks.append((rel, e))
            elif e.get("hardlink") is not None:
                links.append((rel, e))
            else:
                batch.append((rel, e))
                chunks += len(e["chunk_ids"])
                if len(batch) >= BATCH_FILES or chunks >= BATCH_CHUNKS:
                    flush()
                    chunks = 0
        flush()
        for rel, e in links:
            if e["hardlink"] in leaders:
                _replace_with_link(at(e["hardlink"]), at(rel))
                _meta(at(rel), e)
                result.hardlinks += 1
            else:  # its first path is outside the restored part, or failed: the content
                batch.append((rel, e))
                if len(batch) >= BATCH_FILES:
                    flush()
        flush()
    for rel, e in symlinks:
        path = at(rel)
        try:
            if stat.S_ISDIR(os.lstat(path).st_mode):
                result.failed.append(f"{rel}: a folder is in the way")
                continue
            os.unlink(path)  # --overwrite: a file or symlink there is replaced
        except FileNotFoundError:
            pass
        os.symlink(os.fsencode(e["target"]), path)
        _meta(path, e, is_link=True)
        result.symlinks += 1
    for rel, m in reversed(dirs):
        _meta(at(rel), m)
    return result


def _replace_with_link(source: str, target: str) -> None:
    tmp = tmp_name(target)
    os.link(source, tmp, follow_symlinks=False)
    os.replace(tmp, target)


def raise_if_failed(result: RestoreResult) -> None:
    if result.failed:
        raise IntegrityError(
            f"{len(result.failed)} file(s) not restored (damaged or missing chunks): "
            + "; ".join(result.failed[:3])
            + (" ..." if len(result.failed) > 3 else "")
        )
