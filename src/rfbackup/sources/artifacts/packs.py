"""Packs: objects of about 16 MiB holding blobs, each zstd-compressed then age-encrypted.

A blob is named by the keyed BLAKE3 of its plaintext; reading one decrypts, decompresses and
checks that name, so a changed byte anywhere is caught and a blob cannot be swapped for
another.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import pyrage
import zstandard

from rfbackup.errors import ConfigError, IntegrityError
from rfbackup.sources.artifacts.index import Location
from rfbackup.sources.artifacts.store import PACKS, Store
from rfbackup.storage.base import read_bytes

DATA = 0
TREE = 1
MAX_RAW = 64 * 1024 * 1024  # no blob decompresses past this: a forged one cannot exhaust memory


def pack_key(name: str) -> str:
    return f"{PACKS}{name[:2]}/{name}"


def encode(store: Store, plain: bytes | memoryview, level: int) -> bytes:
    compressed = zstandard.ZstdCompressor(level=level).compress(plain)
    # flag byte: 1 zstd, 0 stored as is (incompressible)
    body = b"\x00" + bytes(plain) if len(compressed) >= len(plain) else b"\x01" + compressed
    return bytes(pyrage.encrypt(body, store.recipients))


def decode(store: Store, blob_id: bytes, data: bytes, raw_len: int, where: str) -> bytes:
    """The verified plaintext of a blob, or IntegrityError naming ``where``."""
    try:
        body = bytes(pyrage.decrypt(data, store.identities))
    except Exception as exc:
        if "no matching keys" in str(exc).lower():
            raise ConfigError(f"{where}: the age identity does not match this repository") from None
        raise IntegrityError(f"{where}: cannot decrypt") from None
    if raw_len > MAX_RAW:
        raise IntegrityError(f"{where}: impossible size")
    if body[:1] == b"\x01":
        try:
            plain = zstandard.ZstdDecompressor().decompress(body[1:], max_output_size=raw_len)
        except zstandard.ZstdError:
            raise IntegrityError(f"{where}: cannot decompress") from None
    elif body[:1] == b"\x00":
        plain = body[1:]
    else:
        raise IntegrityError(f"{where}: unknown blob encoding")
    if len(plain) != raw_len or store.key.chunk_id(plain) != blob_id:
        raise IntegrityError(f"{where}: content does not match its id")
    return plain


class PackWriter:
    """Collects encoded blobs; each full pack is uploaded on a thread while chunking goes on."""

    def __init__(
        self,
        store: Store,
        pack_size: int,
        on_stored: Callable[[bytes, Location], None],
        uploads: int = 2,
    ) -> None:
        self.store = store
        self.pack_size = pack_size
        self.on_stored = on_stored
        self._buf = bytearray()
        self._pending: list[tuple[bytes, int, int, int, int]] = []
        self._pool = ThreadPoolExecutor(max_workers=uploads, thread_name_prefix="pack-upload")
        self._futures: list[Future[None]] = []
        self.packs_written = 0
        self.stored_bytes = 0

    def add(self, blob_id: bytes, encoded: bytes, raw_len: int, kind: int) -> None:
        self._pending.append((blob_id, len(self._buf), len(encoded), raw_len, kind))
        self._buf += encoded
        if len(self._buf) >= self.pack_size:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        name = secrets.token_hex(16)
        data, entries = bytes(self._buf), self._pending
        self._buf, self._pending = bytearray(), []
        self._wait(limit=2)
        self._futures.append(self._pool.submit(self._upload, name, data, entries))

    def _upload(
        self, name: str, data: bytes, entries: list[tuple[bytes, int, int, int, int]]
    ) -> None:
        self.store.repo.put(pack_key(name), data)
        self.packs_written += 1
        self.stored_bytes += len(data)
        for blob_id, offset, length, raw_len, kind in entries:
            self.on_stored(blob_id, Location(name, offset, length, raw_len, kind))

    def _wait(self, limit: int = 0) -> None:
        while len(self._futures) > limit:
            self._futures.pop(0).result()

    def finish(self) -> None:
        self.flush()
        try:
            self._wait()
        finally:
            self._pool.shutdown(wait=True)

    def abort(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def read_pack(store: Store, name: str) -> bytes:
    return read_bytes(store.repo, pack_key(name))
