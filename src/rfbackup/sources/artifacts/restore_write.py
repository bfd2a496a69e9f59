"""Writing one batch of restored files: chunks read in pack order, in coalesced ranged reads.

A batch is a bounded number of files (restore.py streams the snapshot tree into batches), so
memory does not grow with the tree. Within a batch every chunk is read once, in the order it
lies in its pack; neighbouring chunks of one pack are fetched by one ranged read (a span), and
each one is opened and checked against its keyed id before any byte of it is written. Each file
is written under a temporary name, given its mode, owner and mtime through its descriptor, and
renamed into place only when complete: a damaged chunk fails its files, nothing else.
"""

from __future__ import annotations

import os
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from rfbackup.errors import ConfigError, IntegrityError, NotFound, RfBackupError
from rfbackup.progress import Reporter
from rfbackup.sources.artifacts.index import Location
from rfbackup.sources.artifacts.packs import HEADER_READ, decode, open_blob, pack_key, unwrap_key
from rfbackup.sources.artifacts.reader import read_range
from rfbackup.sources.artifacts.store import Store

TMP = ".rfbackup-restore-"
GAP = 256 * 1024  # chunks closer than this in a pack are read together, the gap thrown away
SPAN = 8 * 1024 * 1024  # at most this much in one read
READERS = 2  # spans read and verified at once
WRITERS = 4  # threads writing whole small files
FOLDERS = 256  # folders a batch keeps open for the writers
DEPTH = 256  # small files handed to them and not yet written: bounds the memory they hold
Entry = dict[str, Any]


def meta_fd(fd: int, e: Entry) -> None:
    """Owner (as root), mode, then mtime, through the open file: no path lookups."""
    if os.geteuid() == 0:
        os.fchown(fd, e["uid"], e["gid"])
    os.fchmod(fd, e["mode"] & 0o7777)
    os.utime(fd, ns=(e["mtime_ns"], e["mtime_ns"]))


def tmp_name(final: str) -> str:
    return os.path.join(os.path.dirname(final), f"{TMP}{os.path.basename(final)}")


def _spans(order: list[tuple[bytes, Location]]) -> Iterator[list[tuple[bytes, Location]]]:
    """Runs of chunks of one pack, close together, in pack order."""
    run: list[tuple[bytes, Location]] = []
    for cid, loc in order:
        if run:
            first, last = run[0][1], run[-1][1]
            end = last.offset + last.length
            if (
                loc.pack != first.pack
                or loc.offset - end > GAP
                or loc.offset + loc.length - first.offset > SPAN
            ):
                yield run
                run = []
        run.append((cid, loc))
    if run:
        yield run


def _read_span(
    store: Store, run: list[tuple[bytes, Location]]
) -> Iterator[tuple[bytes, Location, bytes | RfBackupError]]:
    """Each chunk of ``run`` verified (its plaintext), or the error that fails its files."""
    pack = run[0][1].pack
    start = run[0][1].offset
    end = run[-1][1].offset + run[-1][1].length
    try:
        if pack not in store.pack_keys:
            unwrap_key(store, pack, read_range(store, pack_key(pack), 0, HEADER_READ))
        data = read_range(store, pack_key(pack), start, end - start)
    except NotFound:
        data = None
    except IntegrityError as exc:
        for cid, loc in run:
            yield cid, loc, exc
        return
    view = memoryview(data) if data is not None else None
    for cid, loc in run:
        where = f"chunk {cid.hex()[:16]} in pack {loc.pack[:16]}"
        if view is None:
            yield cid, loc, IntegrityError(f"{where}: the pack is missing")
            continue
        piece = view[loc.offset - start : loc.offset - start + loc.length]
        if len(piece) != loc.length:
            yield cid, loc, IntegrityError(f"{where}: the pack is shorter than its index says")
            continue
        try:
            body = open_blob(store.pack_keys[pack], cid, bytes(piece), where)
            yield cid, loc, decode(store, cid, body, loc.raw, where)
        except RfBackupError as exc:
            yield cid, loc, exc


def _decoded(
    store: Store, runs: Iterator[list[tuple[bytes, Location]]]
) -> Iterator[list[tuple[bytes, Location, bytes | RfBackupError]]]:
    """The spans read and verified on ``READERS`` threads (decryption, zstd and BLAKE3 release
    the GIL on large inputs), in order, at most ``READERS + 1`` spans ahead."""
    with ThreadPoolExecutor(READERS, thread_name_prefix="restore-read") as pool:
        ahead: deque[Future[list[tuple[bytes, Location, bytes | RfBackupError]]]] = deque()
        try:
            for run in runs:
                ahead.append(pool.submit(lambda r: list(_read_span(store, r)), run))
                if len(ahead) > READERS:
                    yield ahead.popleft().result()
            while ahead:
                yield ahead.popleft().result()
        finally:
            for fut in ahead:
                fut.cancel()


class Files:
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


def write_batch(
    store: Store,
    lookup: Callable[[bytes], Location | None],
    files: list[tuple[str, Entry]],
    at: Callable[[str], str],
    progress: Reporter,
) -> tuple[list[tuple[str, Entry]], dict[str, str]]:
    """Write ``files``: (the ones written completely, {rel: why} of the ones that failed).

    A file is finished (size, metadata, renamed into place) as soon as its last chunk is
    written, while it is still open: one open per file."""
    tmp: dict[str, str] = {}
    failed: dict[str, str] = {}
    wanted: dict[bytes, list[tuple[str, int]]] = {}
    where: dict[bytes, Location] = {}
    left: dict[str, int] = {}  # chunks still to write, per file
    for rel, e in files:
        tmp[rel] = tmp_name(at(rel))
        offset = 0
        for cid in e["chunk_ids"]:
            loc = where.get(cid) or lookup(cid)
            if loc is None:
                failed.setdefault(rel, f"chunk {cid.hex()[:16]} is in no index")
                break
            where[cid] = loc
            wanted.setdefault(cid, []).append((rel, offset))
            offset += loc.raw
        else:
            if offset != e["size"]:
                failed[rel] = "its chunks do not add up to its size"
        left[rel] = len(e["chunk_ids"])
    fds = Files(tmp)
    entry = dict(files)
    done: list[tuple[str, Entry]] = []

    def finish(rel: str) -> None:
        e = entry[rel]
        fd = fds.get(rel)
        os.ftruncate(fd, e["size"])
        meta_fd(fd, e)
        fds.close(rel)
        try:
            os.replace(tmp[rel], at(rel))
        except IsADirectoryError:
            os.unlink(tmp[rel])
            fds.created.discard(rel)
            failed[rel] = "a folder is in the way"
            return
        done.append((rel, e))

    order = sorted(where.items(), key=lambda item: (item[1].pack, item[1].offset))
    del where
    pool = _Writers(done, failed)
    try:
        for run in _decoded(store, _spans(order)):
            for cid, _loc, data in run:
                targets = [(r, o) for r, o in wanted.pop(cid) if r not in failed]
                if isinstance(data, RfBackupError):
                    if isinstance(data, ConfigError):
                        raise data
                    for r, _o in targets:
                        failed.setdefault(r, str(data))
                    continue
                # the first byte rules out most chunks without a scan of the whole chunk
                zero = data[:1] == b"\0" and data.count(0) == len(data)
                for r, o in targets:
                    progress.advance(len(data))
                    left[r] -= 1
                    if not left[r] and r not in fds.created:  # the whole file: on the pool
                        pool.submit(r, entry[r], at(r), b"" if zero else data, o)
                        continue
                    if not zero and os.pwrite(fds.get(r), data, o) != len(data):
                        raise OSError(f"{r}: short write")  # zero chunks stay holes (sparse)
                    if not left[r]:
                        finish(r)
        for rel, _e in files:
            if rel in failed:
                fds.close(rel)
                if rel in fds.created:
                    os.unlink(tmp[rel])
            elif not left[rel] and rel not in fds.created and rel not in pool.handed:  # empty
                finish(rel)
    finally:
        pool.close()
        for rel in list(fds.open):
            fds.close(rel)
    return done, failed


def _write_whole(
    e: Entry, folder: int | None, tmp: str, final: str, data: bytes, offset: int
) -> str | None:
    """A file in one piece (the usual small file): create, write, finish, rename, with names
    relative to the open ``folder`` (no path walk per call). None when done, else why not."""
    flags = os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_CREAT | os.O_EXCL
    try:
        fd = os.open(tmp, flags, 0o600, dir_fd=folder)
    except FileExistsError:  # left by an earlier, interrupted restore
        os.unlink(tmp, dir_fd=folder)
        fd = os.open(tmp, flags, 0o600, dir_fd=folder)
    try:
        if data and os.pwrite(fd, data, offset) != len(data):
            raise OSError(f"{final}: short write")
        if offset + len(data) != e["size"]:  # a new file: only a hole at the end needs it
            os.ftruncate(fd, e["size"])
        meta_fd(fd, e)
    finally:
        os.close(fd)
    try:
        os.replace(tmp, final, src_dir_fd=folder, dst_dir_fd=folder)
    except IsADirectoryError:
        os.unlink(tmp, dir_fd=folder)
        return "a folder is in the way"
    return None


class _Writers:
    """Whole small files written on a few threads (the file system calls release the GIL)
    while the main thread reads and verifies the next chunks. At most ``depth`` in flight."""

    def __init__(self, done: list[tuple[str, Entry]], failed: dict[str, str]) -> None:
        self.done = done
        self.failed = failed
        self._pool = ThreadPoolExecutor(WRITERS, thread_name_prefix="restore-write")
        self.handed: set[str] = set()
        self._folders: dict[str, int] = {}
        self._inflight: deque[tuple[str, Entry, Future[str | None]]] = deque()

    def submit(self, rel: str, e: Entry, final: str, data: bytes, offset: int) -> None:
        self.handed.add(rel)
        parent, name = os.path.split(final)
        folder = self._folder(parent)
        args: tuple[Entry, int | None, str, str, bytes, int]
        if folder is None:
            args = (e, None, tmp_name(final), final, data, offset)
        else:
            args = (e, folder, f"{TMP}{name}", name, data, offset)
        self._inflight.append((rel, e, self._pool.submit(_write_whole, *args)))
        while len(self._inflight) > DEPTH:
            self._collect()

    def _collect(self) -> None:
        rel, e, fut = self._inflight.popleft()
        why = fut.result()  # an OSError here stops the restore, as it would unthreaded
        if why is None:
            self.done.append((rel, e))
        else:
            self.failed[rel] = why

    def _folder(self, path: str) -> int | None:
        """An open descriptor of a folder of this batch (at most FOLDERS; then None: paths)."""
        fd = self._folders.get(path)
        if fd is None and len(self._folders) < FOLDERS:
            flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = self._folders[path] = os.open(path, flags)
        return fd

    def close(self) -> None:
        try:
            while self._inflight:
                self._collect()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
            for fd in self._folders.values():
                os.close(fd)
