"""``rfbackup backup artifacts``: walk the paths, store new chunks and trees, then the snapshot.

Order of writes: packs, then the index of what they hold, then the stat cache, then (with
Object Lock) longer locks on the older objects the snapshot reuses (retention.py), then the
snapshot (the commit point). A run killed before the snapshot leaves packs no snapshot uses;
``prune`` removes them once they are older than its grace period.
"""

from __future__ import annotations

import os
import stat
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rfbackup.lease import ensure_held
from rfbackup.logs import log
from rfbackup.progress import Reporter
from rfbackup.sources.artifacts import index as index_mod
from rfbackup.sources.artifacts import statcache
from rfbackup.sources.artifacts.chunker import Chunker
from rfbackup.sources.artifacts.index import Index, Location
from rfbackup.sources.artifacts.packs import DATA, TREE, PackWriter, compress, pack_key
from rfbackup.sources.artifacts.retention import extend_on_use
from rfbackup.sources.artifacts.store import INDEX, Store
from rfbackup.sources.artifacts.tree import Snapshot, encode_tree, new_snapshot, write_snapshot

_NOATIME = getattr(os, "O_NOATIME", 0)


@dataclass
class Options:
    pack_size: int = 16 * 1024 * 1024
    zstd_level: int = 3


@dataclass
class Stats:
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    bytes: int = 0  # size of every file in the snapshot
    read_bytes: int = 0  # what was actually read
    unchanged_files: int = 0
    changed_while_read: int = 0
    new_chunks: int = 0
    added_bytes: int = 0  # plaintext of new chunks and trees
    stored_bytes: int = 0  # what the new packs take in the repository
    vanished: int = 0
    unreadable: int = 0
    locks_extended: int = 0  # older objects whose Object Lock this run lengthened

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class Walker:
    store: Store
    options: Options
    known: dict[bytes, Location]
    old_cache: statcache.Cache
    progress: Reporter
    new_cache: statcache.Cache = field(default_factory=dict)
    new_entries: dict[bytes, Location] = field(default_factory=dict)
    added: set[bytes] = field(default_factory=set)
    reused: set[bytes] = field(default_factory=set)  # blobs of earlier runs this snapshot uses
    hardlinks: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    stats: Stats = field(default_factory=Stats)

    def __post_init__(self) -> None:
        self.chunker = Chunker(self.store.chunker, self.store.key.seed)
        self.packs = PackWriter(self.store, self.options.pack_size, self._stored)

    def _stored(self, blob_id: bytes, loc: Location) -> None:
        self.new_entries[blob_id] = loc

    def put_blob(self, data: bytes | memoryview, kind: int) -> bytes:
        blob_id = self.store.key.chunk_id(data)
        if blob_id in self.known:
            self.reused.add(blob_id)
            return blob_id
        if blob_id in self.added:
            return blob_id
        self.added.add(blob_id)
        self.packs.add(blob_id, compress(data, self.options.zstd_level), len(data), kind)
        self.stats.new_chunks += 1
        self.stats.added_bytes += len(data)
        return blob_id

    def _error(self, rel: str, exc: OSError) -> None:
        self.stats.unreadable += 1
        message = f"{rel}: {exc.strerror or exc}"
        self.errors.append(message)
        log.error("cannot read %s", message)

    def _vanished(self, rel: str) -> None:
        self.stats.vanished += 1
        log.warning("%s vanished during the backup; not in this snapshot", rel)

    def entry(self, path: str, rel: str, name: str, st: os.stat_result) -> dict[str, Any] | None:
        base: dict[str, Any] = {
            "name": name,
            "mode": stat.S_IMODE(st.st_mode),
            "uid": st.st_uid,
            "gid": st.st_gid,
            "mtime_ns": st.st_mtime_ns,
        }
        if stat.S_ISDIR(st.st_mode):
            tree = self.directory(path, rel)
            if tree is None:
                return None
            self.stats.dirs += 1
            return {**base, "type": "dir", "subtree": tree.hex()}
        if stat.S_ISLNK(st.st_mode):
            try:
                target = os.readlink(path)
            except FileNotFoundError:
                self._vanished(rel)
                return None
            except OSError as exc:
                self._error(rel, exc)
                return None
            self.stats.symlinks += 1
            return {**base, "type": "symlink", "target": target}
        if stat.S_ISREG(st.st_mode):
            return self.file(path, rel, st, base)
        log.warning("%s is not a file, folder or symlink (a socket or device): skipped", rel)
        return None

    def directory(self, path: str, rel: str) -> bytes | None:
        try:
            with os.scandir(path) as it:
                children = sorted(it, key=lambda d: d.name)
        except FileNotFoundError:
            self._vanished(rel)
            return None
        except OSError as exc:
            self._error(rel, exc)
            return None
        entries = []
        for child in children:
            child_rel = f"{rel}/{child.name}"
            try:
                st = child.stat(follow_symlinks=False)
            except FileNotFoundError:
                self._vanished(child_rel)
                continue
            e = self.entry(child.path, child_rel, child.name, st)
            if e is not None:
                entries.append(e)
        return self.put_blob(encode_tree(entries), TREE)

    def file(
        self, path: str, rel: str, st: os.stat_result, base: dict[str, Any]
    ) -> dict[str, Any] | None:
        group = (st.st_dev, st.st_ino) if st.st_nlink > 1 else None
        if group is not None and group in self.hardlinks:
            first = self.hardlinks[group]
            self.stats.files += 1
            return {**base, **{k: first[k] for k in ("size", "chunks", "nlink")},
                    "type": "file", "hardlink": first["rel"]}  # fmt: skip
        pk = statcache.path_key(self.store, rel)
        old = self.old_cache.get(pk)
        now = statcache.entry(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
        old_ids = statcache.chunk_ids(old) if old is not None else []
        if (
            old is not None
            and statcache.same_stat(old, now)
            and all(i in self.known or i in self.added for i in old_ids)
        ):
            ids: list[bytes] | None = old_ids
            self.reused.update(i for i in old_ids if i in self.known)
            size = st.st_size
            self.new_cache[pk] = old
            self.stats.unchanged_files += 1
            self.progress.advance(size)
        else:
            read = self.read_file(path, rel, pk)
            if read is None:
                return None
            ids, size = read
        self.stats.files += 1
        self.stats.bytes += size
        if self.stats.files % 64 == 0:
            self.progress.relabel(f"artifacts: {self.stats.files} files")
        out = {**base, "type": "file", "size": size, "chunks": [i.hex() for i in ids or []]}
        if group is not None:
            out["nlink"] = st.st_nlink
            self.hardlinks[group] = {**out, "rel": rel}
        return out

    def read_file(self, path: str, rel: str, pk: bytes) -> tuple[list[bytes], int] | None:
        try:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | _NOATIME)
            except PermissionError:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            self._vanished(rel)
            return None
        except OSError as exc:
            self._error(rel, exc)
            return None
        ids: list[bytes] = []
        size = 0
        with os.fdopen(fd, "rb", buffering=0) as fh:
            before = os.fstat(fd)
            try:
                for data in self.chunker.chunks(fh, before.st_size):
                    ids.append(self.put_blob(data, DATA))
                    size += len(data)
                    self.progress.advance(len(data))
            except OSError as exc:
                self._error(rel, exc)
                return None
            after = os.fstat(fd)
        self.stats.read_bytes += size
        seen = statcache.entry(
            before.st_size, before.st_mtime_ns, before.st_ctime_ns, before.st_ino
        )
        if not statcache.same_stat(
            seen, statcache.entry(after.st_size, after.st_mtime_ns, after.st_ctime_ns, after.st_ino)
        ) or (size != after.st_size):
            self.stats.changed_while_read += 1
            log.warning("%s changed while it was read: stored as read, read again next time", rel)
        else:
            self.new_cache[pk] = seen + b"".join(ids)
        return ids, size


def run_backup(store: Store, paths: list[Path], options: Options) -> Snapshot:
    """Back up ``paths`` (absolute) into one snapshot; the caller holds the lease."""
    # one Python frame pair per folder level (no C stack in 3.11): deep trees are fine
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 100_000))
    started = datetime.now(UTC)
    names = [p.name or "root" for p in paths]
    absolute = [str(p) for p in paths]
    index = Index.load(store, strict=False)
    old_cache, old_keys = statcache.load(store, absolute)
    with Reporter("artifacts", None) as progress:
        w = Walker(store, options, index.entries, old_cache, progress)
        try:
            roots = []
            for path, name in zip(paths, names, strict=True):
                try:
                    st = os.lstat(path)
                except FileNotFoundError:
                    w._vanished(str(path))
                    continue
                e = w.entry(str(path), name, name, st)
                if e is not None:
                    roots.append(e)
            root = w.put_blob(encode_tree(roots), TREE)
            w.packs.finish()
        except BaseException:
            w.packs.abort()
            raise
    w.stats.stored_bytes = w.packs.stored_bytes
    # what only the walk needed goes before the index and the cache are encoded (peak RSS)
    w.added.clear()
    w.old_cache = {}
    del old_cache
    new_objects = {pack_key(loc.pack) for loc in w.new_entries.values()}
    if w.new_entries:
        new_objects.add(f"{INDEX}{index_mod.write(store, w.new_entries)}")
    w.new_entries.clear()
    statcache.save(store, absolute, w.new_cache, old_keys)
    old_packs = {w.known[i].pack for i in w.reused}
    old_objects = {pack_key(p) for p in old_packs}
    old_objects.update(k for p in old_packs for k in index.named_by.get(p, ()))
    ensure_held()
    policy = store.repo.retention_policy()
    w.stats.locks_extended = len(
        extend_on_use(store, old_objects, new_objects, policy, started).extended
    )
    snap = new_snapshot(absolute, root, bool(w.errors), w.errors)
    snap.stats = w.stats.to_dict()
    ensure_held()  # another run took our lease meanwhile: publish nothing
    write_snapshot(store, snap)
    return snap
