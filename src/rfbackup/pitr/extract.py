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
from pathlib import Path
from typing import Any

from rfbackup.catalog import Entry
from rfbackup.errors import IntegrityError
from rfbackup.pitr import verify
from rfbackup.progress import Reporter
from rfbackup.storage import Repository

CHUNK = 1024 * 1024
QUEUE_CHUNKS = 8
_END = object()


class _Prefetcher(io.RawIOBase):
    """The plaintext of a stored object, produced by a background thread."""

    def __init__(self, repo: Repository, entry: Entry, identities: list[Any]) -> None:
        self._queue: queue.Queue[object] = queue.Queue(QUEUE_CHUNKS)
        self._stop = threading.Event()
        self._pending = memoryview(b"")
        self._done = False
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
        from rfbackup.pipeline import HashingReader
        from rfbackup.restore import Located, plaintext

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

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._pending:
            if self._done:
                return 0
            item = self._queue.get()
            if item is _END:
                self._done = True
                return 0
            if isinstance(item, BaseException):
                self._done = True
                raise item
            assert isinstance(item, bytes)
            self._pending = memoryview(item)
        n = min(len(b), len(self._pending))
        b[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def drain(self) -> str | None:
        """Read to the end; returns the sha256 of the stored bytes."""
        while self.readinto(bytearray(CHUNK)):
            pass
        self._thread.join()
        return self.sha256

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        super().close()


def _safe_member(member: tarfile.TarInfo) -> None:
    parts = Path(member.name).parts
    if member.name.startswith("/") or ".." in parts:
        raise IntegrityError(f"base backup holds an unsafe path {member.name!r}")
    if not (member.isfile() or member.isdir()):
        raise IntegrityError(f"base backup holds {member.name!r}, which is not a plain file")


def _write_file(tar: tarfile.TarFile, member: tarfile.TarInfo, path: Path) -> verify.Written:
    src = tar.extractfile(member)
    assert src is not None
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    crc = size = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, member.mode & 0o777)
    try:
        while chunk := src.read(CHUNK):
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
            crc = verify.crc_update(crc, chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size != member.size:
        raise IntegrityError(f"base backup ends inside {member.name!r}")
    os.utime(path, (member.mtime, member.mtime))
    return verify.Written(size, crc)


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
    written: dict[str, verify.Written] = {}
    manifest: bytes | None = None
    dirs: list[tuple[Path, int]] = []
    source = _Prefetcher(repo, entry, identities)
    try:
        stream = io.BufferedReader(source, CHUNK)
        with (
            tarfile.open(fileobj=stream, mode="r|", bufsize=CHUNK) as tar,
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
                        dirs.append((path, member.mode & 0o777))
                    else:
                        written[name] = _write_file(tar, member, path)
                        if name == verify.MANIFEST:
                            manifest = path.read_bytes()
                except OSError as exc:  # ours to write, not the backup's fault
                    raise storage_error(exc, str(path)) from None
                files += 1
                total += member.size
                progress.advance(member.size + 512)
        sha256 = source.drain()
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
