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
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rfbackup.errors import ConfigError, IntegrityError, NotFound, RfBackupError
from rfbackup.logs import log
from rfbackup.progress import Reporter
from rfbackup.sources.artifacts import reader
from rfbackup.sources.artifacts.index import Index
from rfbackup.sources.artifacts.packs import blob_from_pack, read_pack
from rfbackup.sources.artifacts.store import Store
from rfbackup.sources.artifacts.tree import Snapshot, valid_name

_TMP = ".rfbackup-restore-"


@dataclass
class Plan:
    dirs: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    files: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    links: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # hardlinks
    symlinks: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


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


def _walk(store: Store, idx: Index, tree_id: bytes, rel: str, plan: Plan) -> None:
    """Parents before children, without recursion: any depth a file system allows."""
    stack = [(tree_id, rel)]
    while stack:
        tid, where = stack.pop()
        _one_tree(store, idx, tid, where, plan, stack)


def _one_tree(
    store: Store, idx: Index, tree_id: bytes, rel: str, plan: Plan, stack: list[tuple[bytes, str]]
) -> None:
    for e in reader.tree(store, idx.entries, tree_id):
        path = f"{rel}/{e['name']}" if rel else e["name"]
        if e["type"] == "dir":
            plan.dirs.append((path, e))
            stack.append((e["subtree_id"], path))
        elif e["type"] == "symlink":
            plan.symlinks.append((path, e))
        elif e.get("hardlink") is not None:
            plan.links.append((path, e))
        else:
            plan.files.append((path, e))


def _select(store: Store, idx: Index, snap: Snapshot, sub: str | None) -> tuple[Plan, str]:
    plan = Plan()
    root = bytes.fromhex(snap.root)
    if not sub:
        _walk(store, idx, root, "", plan)
        return plan, ""
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
    kind = entry["type"]
    bucket = {"dir": plan.dirs, "symlink": plan.symlinks}.get(kind, plan.files)
    bucket.append((path, entry))
    if kind == "dir":
        _walk(store, idx, entry["subtree_id"], path, plan)
    # parent folders of the subpath are made as plain folders
    return plan, "/".join(parts[:-1])


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
    check_destination(dest, overwrite)
    idx = Index.load(store, strict=False)
    plan, parent = _select(store, idx, snap, sub)
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
    for rel, _e in plan.dirs:
        _real_dir(at(rel))
        result.dirs += 1
    written = _write_files(store, idx, plan.files, at, result)
    for rel, e in plan.links:
        leader = e["hardlink"]
        target = at(rel)
        if leader in written:
            _replace_with_link(at(leader), target)
            result.hardlinks += 1
        else:  # its first path is outside the restored part: write the content
            written |= _write_files(store, idx, [(rel, e)], at, result)
    for rel, e in plan.symlinks:
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
    for rel, e in plan.files + plan.links:
        if rel in written:
            _meta(at(rel), e)
    for rel, e in reversed(plan.dirs):
        _meta(at(rel), e)
    return result


def _replace_with_link(source: str, target: str) -> None:
    tmp = os.path.join(os.path.dirname(target), f"{_TMP}{os.path.basename(target)}")
    os.link(source, tmp, follow_symlinks=False)
    os.replace(tmp, target)


def _write_files(
    store: Store,
    idx: Index,
    files: list[tuple[str, dict[str, Any]]],
    at: Any,
    result: RestoreResult,
) -> set[str]:
    """Write ``files``; returns the ones written completely. Chunks are grouped by pack."""
    tmp: dict[str, str] = {}
    failed: dict[str, str] = {}
    wanted: dict[bytes, list[tuple[str, int]]] = {}
    for rel, e in files:
        final = at(rel)
        t = os.path.join(os.path.dirname(final), f"{_TMP}{os.path.basename(final)}")
        tmp[rel] = t
        offset = 0
        for cid in e["chunk_ids"]:
            loc = idx.entries.get(cid)
            if loc is None:
                failed.setdefault(rel, f"chunk {cid.hex()[:16]} is in no index")
                break
            wanted.setdefault(cid, []).append((rel, offset))
            offset += loc.raw
        else:
            if offset != e["size"]:
                failed[rel] = "its chunks do not add up to its size"
    fds = _Files(tmp)
    order = sorted(wanted, key=lambda c: (idx.entries[c].pack, idx.entries[c].offset))
    total = sum(idx.entries[c].raw * len(wanted[c]) for c in order)
    whole = _dense_packs(idx, order)
    pack: tuple[str, bytes] | None = None
    with Reporter("restoring", total) as progress:
        for cid in order:
            targets = [(r, o) for r, o in wanted[cid] if r not in failed]
            if not targets:
                continue
            loc = idx.entries[cid]
            try:
                if loc.pack in whole:  # most of it is needed: one read of the whole pack
                    if pack is None or pack[0] != loc.pack:
                        pack = None  # free the previous one first
                        pack = (loc.pack, _read_pack_or_empty(store, loc.pack))
                    data = blob_from_pack(store, cid, loc, pack[1])[1]
                else:
                    data = reader.blob(store, cid, loc)
            except RfBackupError as exc:
                if isinstance(exc, ConfigError):
                    raise
                for r, _o in targets:
                    failed.setdefault(r, str(exc))
                continue
            zero = data.count(0) == len(data)
            for r, o in targets:
                if not zero:  # all-zero chunks stay holes: sparse files stay sparse
                    os.pwrite(fds.get(r), data, o)
                progress.advance(len(data))
    written: set[str] = set()
    for rel, e in files:
        if rel not in failed:
            fd = fds.get(rel)
            os.ftruncate(fd, e["size"])
        fds.close(rel)
        if rel in failed:
            if rel in fds.created:
                os.unlink(tmp[rel])
            message = f"{rel}: {failed[rel]}"
            log.error("not restored: %s", message)
            result.failed.append(message)
            continue
        final = at(rel)
        if os.path.isdir(final) and not os.path.islink(final):
            os.unlink(tmp[rel])
            result.failed.append(f"{rel}: a folder is in the way")
            continue
        os.replace(tmp[rel], final)
        written.add(rel)
        result.files += 1
        result.bytes += e["size"]
    return written


def _dense_packs(idx: Index, needed: list[bytes]) -> set[str]:
    """Packs of which at least a quarter is needed: read whole rather than blob by blob."""
    total: dict[str, int] = {}
    for loc in idx.entries.values():
        total[loc.pack] = total.get(loc.pack, 0) + loc.length
    want: dict[str, int] = {}
    for cid in needed:
        loc = idx.entries[cid]
        want[loc.pack] = want.get(loc.pack, 0) + loc.length
    return {p for p, n in want.items() if n * 4 >= total[p]}


def _read_pack_or_empty(store: Store, name: str) -> bytes:
    """A missing pack reads as empty: each of its blobs then fails as "shorter than its index"."""
    try:
        return read_pack(store, name)
    except NotFound:
        return b""


class _Files:
    """Open temporary files, created on first use, at most ``limit`` open at once."""

    def __init__(self, paths: dict[str, str], limit: int = 256) -> None:
        self.paths = paths
        self.limit = limit
        self.open: OrderedDict[str, int] = OrderedDict()
        self.created: set[str] = set()

    def get(self, rel: str) -> int:
        fd = self.open.pop(rel, None)
        if fd is None:
            flags = os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC
            path = self.paths[rel]
            if rel not in self.created:
                flags |= os.O_CREAT | os.O_EXCL
            try:
                fd = os.open(path, flags, 0o600)
            except FileExistsError:  # left by an earlier, interrupted restore
                os.unlink(path)
                fd = os.open(path, flags, 0o600)
            self.created.add(rel)
        self.open[rel] = fd
        while len(self.open) > self.limit:
            os.close(self.open.popitem(last=False)[1])
        return fd

    def close(self, rel: str) -> None:
        fd = self.open.pop(rel, None)
        if fd is not None:
            os.close(fd)


def raise_if_failed(result: RestoreResult) -> None:
    if result.failed:
        raise IntegrityError(
            f"{len(result.failed)} file(s) not restored (damaged or missing chunks): "
            + "; ".join(result.failed[:3])
            + (" ..." if len(result.failed) > 3 else "")
        )
