"""Unpack a stored base backup into an empty data directory, on both cores.

    reader thread:  stored bytes -> sha256 -> [age] -> zstd  --(bounded queue)-->
    calling thread: tar headers -> write each file, CRC32C as it is written -> verify.check

The reader thread reads, hashes and decompresses (hashlib and zstandard release the GIL);
the calling thread parses the tar and writes the files. At most ``QUEUE_CHUNKS`` chunks of
``CHUNK`` bytes wait between them. Any error on either side stops both; the caller removes
what was written.
"""

from __future__ import annotations

import io
import os
import queue
import tarfile
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rfbackup import interrupts
from rfbackup.catalog import Entry
from rfbackup.errors import IntegrityError
from rfbackup.pitr import verify
from rfbackup.progress import Reporter
from rfbackup.storage import Repository

CHUNK = 1024 * 1024
QUEUE_CHUNKS = 8
_END = object()


class _Prefetcher:
    """The plaintext of a stored object, produced by a background thread."""

    def __init__(self, repo: Repository, entry: Entry, identities: list[Any]) -> None:
        self._queue: queue.Queue[object] = queue.Queue(QUEUE_CHUNKS)
        self._stop = threading.Event()
        self._pending = memoryview(b"")
        self._whole: bytes | None = None
        self._done = False
        self.position = 0
        self.sha256: str | None = None
        self._thread = threading.Thread(
            target=self._run, args=(repo, entry, identities), name="pitr-read", daemon=True
        )
        self._thread.start()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, repo: Repository, entry: Entry, identities: list[Any]) -> None:
        interrupts.leave_to_main_thread()
        from rfbackup.engine.fetch import Located, plaintext
        from rfbackup.pipeline import HashingReader

        try:
            with repo.open(entry.name) as raw_stream:
                raw = HashingReader(raw_stream)
                with plaintext(Located(repo, entry), raw, identities) as stream:
                    while chunk := stream.read(CHUNK):
                        if not self._put(chunk):
                            return
                    while raw.read(CHUNK):  # what follows the end of the data still counts
                        if self._stop.is_set():
                            return
                self.sha256 = raw.sha256
            self._put(_END)
        except BaseException as exc:  # handed to the reading side, raised there
            self._put(exc)

    def read(self, n: int = -1, /) -> bytes:
        """Up to ``n`` bytes (fewer only at the end); a whole queued chunk is passed on
        without a copy."""
        parts: list[bytes | memoryview] = []
        want = n if n >= 0 else 1 << 62
        while want > 0:
            if not self._pending and not self._next():
                break
            if not parts and want >= len(self._pending) and self._whole is not None:
                parts.append(self._whole)
            else:
                parts.append(self._pending[:want])
            taken = min(want, len(self._pending))
            self._pending = self._pending[taken:]
            self._whole = None
            want -= taken
            self.position += taken
        if len(parts) == 1 and isinstance(parts[0], bytes):
            return parts[0]
        return b"".join(parts)

    def _next(self) -> bool:
        if self._done:
            return False
        item = self._queue.get()
        if item is _END:
            self._done = True
            return False
        if isinstance(item, BaseException):
            self._done = True
            raise item
        assert isinstance(item, bytes)
        self._pending, self._whole = memoryview(item), item
        return True

    # tarfile's random-access mode (no copying through its stream buffer) only ever
    # seeks forward when members are read in order.
    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = offset if whence == io.SEEK_SET else self.position + offset
        if whence not in (io.SEEK_SET, io.SEEK_CUR) or target < self.position:
            raise IntegrityError("base backup: the tar stream asks to seek backwards")
        while self.position < target and self.read(min(CHUNK, target - self.position)):
            pass
        return self.position

    def drain(self) -> str | None:
        """Read to the end; returns the sha256 of the stored bytes."""
        while self.read(CHUNK):
            pass
        self._thread.join()
        return self.sha256

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def _safe_member(member: tarfile.TarInfo) -> None:
    parts = Path(member.name).parts
    if member.name.startswith("/") or ".." in parts:
        raise IntegrityError(f"base backup holds an unsafe path {member.name!r}")
    if not (member.isfile() or member.isdir()):
        raise IntegrityError(f"base backup holds {member.name!r}, which is not a plain file")


def _write(path: Path, mode: int, mtime: float, chunks: Iterable[bytes]) -> verify.Written:
    crc = size = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode & 0o777)
    try:
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
            crc = verify.crc_update(crc, chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    os.utime(path, (mtime, mtime))
    return verify.Written(size, crc)


def _write_file(tar: tarfile.TarFile, member: tarfile.TarInfo, path: Path) -> verify.Written:
    src = tar.extractfile(member)
    assert src is not None
    got = _write(path, member.mode, member.mtime, iter(lambda: src.read(CHUNK), b""))
    if got.size != member.size:
        raise IntegrityError(f"base backup ends inside {member.name!r}")
    return got


def extract(
    repo: Repository, entry: Entry, data_dir: Path, identities: list[Any], check: bool = True
) -> tuple[int, int]:
    """Unpack the base backup into ``data_dir`` and (with check) verify every file against
    its backup_manifest; returns (files, bytes). Raises IntegrityError if the stored bytes
    differ from our manifest's sha256 or a file from PostgreSQL's backup_manifest."""
    from rfbackup.storage.local import storage_error

    assert entry.manifest is not None
    where = repo.describe(entry.name)
    files = total = 0
    dirs: list[tuple[Path, int]] = []
    written: dict[str, verify.Written] = {}
    made: set[Path] = {data_dir}
    source = _Prefetcher(repo, entry, identities)
    try:
        with (
            tarfile.open(fileobj=source, mode="r:") as tar,  # type: ignore[call-overload]
            Reporter("restoring the base backup", entry.manifest.data.raw_bytes) as progress,
        ):
            for member in tar:
                _safe_member(member)
                name = member.name.rstrip("/")
                if name in ("", "."):
                    continue
                path = data_dir / name
                try:
                    if member.isdir():
                        path.mkdir(parents=True, exist_ok=True, mode=0o700)
                        made.add(path)
                        dirs.append((path, member.mode & 0o777))
                    else:
                        if path.parent not in made:  # a file listed before its folder
                            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                            made.add(path.parent)
                        written[name] = _write_file(tar, member, path)
                except OSError as exc:  # ours to write, not the backup's fault
                    raise storage_error(exc, str(path)) from None
                files += 1
                total += member.size
                progress.advance(member.size + 512)
        sha256 = source.drain()
        has = verify.MANIFEST in written
        manifest = (data_dir / verify.MANIFEST).read_bytes() if has else None
    except tarfile.TarError as exc:
        raise IntegrityError(f"{where} is not a readable tar stream: {exc}") from None
    finally:
        source.close()
    if sha256 != entry.manifest.sha256:
        raise IntegrityError(f"{where} does not match its manifest's sha256: corrupted in storage")
    for path, mode in reversed(dirs):
        os.chmod(path, mode)
    if check and manifest is not None:
        verify.check(data_dir, written, manifest)
    elif check and entry.manifest.physical.get("backup_manifest"):
        verify.check(data_dir, written, None)
    return files, total
