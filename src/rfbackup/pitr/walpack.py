"""One WAL file made ready for the archive: read, checked, hashed, compressed and encrypted.

Packing touches no repository, so the background pusher packs the first segments while it is
still connecting to one (boto3's import and client, the archive's identity), and storing
(:meth:`rfbackup.pitr.archive.WalArchive.store`) is left with the listing and the upload.
Standard library only at import: zstandard and pyrage load on the first pack.
"""

from __future__ import annotations

import hashlib
import os
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rfbackup.errors import ConfigError, IntegrityError, StorageError
from rfbackup.pitr.walnames import OTHER_RE, SEGMENT_RE, Segment, is_wal_file

# The long page header that starts every WAL segment (PostgreSQL's XLogLongPageHeaderData).
HEADER = struct.Struct("<HHIQI4xQII")
XLP_LONG_HEADER = 0x0002


@dataclass(frozen=True)
class SegmentHeader:
    page_address: int
    system_identifier: int
    segment_size: int


@dataclass(frozen=True)
class Packed:
    """What the archive stores for one file, and what it needs to check before storing."""

    name: str
    sha256: str  # of the original bytes
    blob: bytes  # compressed, then encrypted when ``encrypted``
    encrypted: bool
    header: SegmentHeader | None  # a segment's (or .partial's) first page; None for others


def read_header(data: bytes | memoryview, where: str) -> SegmentHeader:
    """The identity of a WAL segment from its first page. Raises IntegrityError if it is not
    a WAL segment."""
    if len(data) < HEADER.size:
        raise IntegrityError(f"{where} is not a WAL segment: only {len(data)} bytes")
    _magic, info, _tli, pageaddr, _rem, sysid, seg_size, _blcksz = HEADER.unpack_from(data)
    if not info & XLP_LONG_HEADER or seg_size == 0 or seg_size & (seg_size - 1):
        raise IntegrityError(f"{where} is not a WAL segment: no long page header")
    return SegmentHeader(pageaddr, sysid, seg_size)


def check_segment(name: str, data: bytes | memoryview, path: Path) -> SegmentHeader:
    """A segment's header, once its size and first page agree with its name."""
    header = read_header(data, str(path))
    if len(data) != header.segment_size:
        raise IntegrityError(
            f"{path}: {len(data)} bytes, but its header says segments are "
            f"{header.segment_size} bytes (a truncated copy?)"
        )
    seg = Segment.parse(name[:24], header.segment_size)
    if seg is None or header.page_address != seg.start_lsn:
        raise IntegrityError(
            f"{path}: its first page belongs at {header.page_address:#x}, not at segment "
            f"{name[:24]} (a renamed or recycled file?)"
        )
    return header


def pack(path: Path, level: int, recipients: list[Any]) -> Packed:
    """Read and check ``path``, then compress (zstd, one frame) and, with recipients, encrypt.
    Raises ConfigError for a name PostgreSQL never archives, IntegrityError for a segment
    whose content does not match its name."""
    name = path.name
    if not is_wal_file(name):
        raise ConfigError(f"{path}: not a WAL file name PostgreSQL archives")
    try:
        data = read_reused(path)
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror}") from None
    header = None
    if SEGMENT_RE.match(name) or (OTHER_RE.match(name) and name.endswith(".partial")):
        header = check_segment(name, data, path)
    sha = hashlib.sha256(data).hexdigest()
    import zstandard

    blob = zstandard.ZstdCompressor(level=level).compress(data)
    if recipients:
        import pyrage

        blob = pyrage.encrypt(blob, recipients)
    return Packed(name, sha, blob, bool(recipients), header)


_thread = threading.local()


def read_reused(path: Path) -> memoryview:
    """A file's bytes, in a buffer this thread reuses: valid until the thread's next call.
    (A fresh 16 MB object per segment costs the kernel page faults and zeroing: about a sixth
    of the CPU a push spends on its own side.)"""
    with open(path, "rb", buffering=0) as fh:
        size = os.fstat(fh.fileno()).st_size
        buf: bytearray | None = getattr(_thread, "buffer", None)
        if buf is None or len(buf) <= size:
            buf = _thread.buffer = bytearray(size + 1)
        view = memoryview(buf)
        n = 0
        while got := fh.readinto(view[n:]):
            n += got
            if n == len(buf):  # it grew while we read: no buffer to keep for this one
                return memoryview(view.tobytes() + fh.read())
        return view[:n]
