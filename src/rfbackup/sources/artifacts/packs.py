"""Packs: objects of about 16 MiB holding blobs, each zstd-compressed then encrypted.

A pack starts with its own random 32-byte key, age-encrypted to the recipients (so a backup
job, which has only the public recipients, cannot read back even what it wrote); each blob is
then sealed with ChaCha20-Poly1305 under that key, with its id as associated data. This is
age's own construction (a file key wrapped per recipient, then an AEAD payload), with one
X25519 per pack instead of one per chunk: small files stay cheap.

A blob is named by the keyed BLAKE3 of its plaintext; reading one opens the seal, decompresses
and checks that name, so a changed byte anywhere is caught and blobs cannot be swapped.

Layout: ``u32 header length | age(pack key) | blob | blob ...``, blob = ``nonce(12) | sealed``.
"""

from __future__ import annotations

import secrets
import struct
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import pyrage
import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from rfbackup.errors import ConfigError, IntegrityError
from rfbackup.sources.artifacts.index import Location
from rfbackup.sources.artifacts.store import PACKS, Store
from rfbackup.storage.base import read_bytes

DATA = 0
TREE = 1
MAX_RAW = 64 * 1024 * 1024  # no blob decompresses past this: a forged one cannot exhaust memory
HEADER_READ = 4096  # one ranged read gets the header of a pack for up to ~20 recipients
_NONCE = 12
_local = threading.local()


def pack_key(name: str) -> str:
    return f"{PACKS}{name[:2]}/{name}"


def compress(plain: bytes | memoryview, level: int) -> bytes:
    """Flag byte 1 + zstd, or flag byte 0 + the bytes as they are (incompressible)."""
    compressed = zstandard.ZstdCompressor(level=level).compress(plain)
    return b"\x00" + bytes(plain) if len(compressed) >= len(plain) else b"\x01" + compressed


def _decompressor() -> zstandard.ZstdDecompressor:
    """One per thread, reused: making one per blob cost more than small blobs' decompression."""
    d: zstandard.ZstdDecompressor | None = getattr(_local, "zstd", None)
    if d is None:
        d = _local.zstd = zstandard.ZstdDecompressor()
    return d


def unwrap_key(store: Store, name: str, head: bytes) -> ChaCha20Poly1305:
    """The pack's key from its first bytes (cached per pack)."""
    cached: ChaCha20Poly1305 | None = store.pack_keys.get(name)
    if cached is not None:
        return cached
    where = f"pack {name[:16]}"
    if len(head) < 4:
        raise IntegrityError(f"{where}: too short")
    (hlen,) = struct.unpack_from("<I", head)
    if hlen > len(head) - 4:
        head = read_bytes_range(store, name, 0, 4 + hlen)
        if len(head) < 4 + hlen:
            raise IntegrityError(f"{where}: truncated header")
    raw = store.age_decrypt(bytes(head[4 : 4 + hlen]), where)
    if len(raw) != 32:
        raise IntegrityError(f"{where}: bad key")
    aead = ChaCha20Poly1305(raw)
    store.pack_keys[name] = aead
    return aead


def read_bytes_range(store: Store, name: str, offset: int, length: int) -> bytes:
    from rfbackup.sources.artifacts.reader import read_range

    return read_range(store, pack_key(name), offset, length)


def open_blob(aead: ChaCha20Poly1305, blob_id: bytes, data: bytes, where: str) -> bytes:
    try:
        return aead.decrypt(data[:_NONCE], data[_NONCE:], blob_id)
    except (InvalidTag, ValueError):
        raise IntegrityError(f"{where}: damaged (authentication failed)") from None


def decode(store: Store, blob_id: bytes, body: bytes, raw_len: int, where: str) -> bytes:
    """The verified plaintext of an opened blob, or IntegrityError naming ``where``."""
    if raw_len > MAX_RAW:
        raise IntegrityError(f"{where}: impossible size")
    if body[:1] == b"\x01":
        try:
            plain = _decompressor().decompress(body[1:], max_output_size=raw_len)
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
    """Seals blobs into packs; each full pack is uploaded on a thread while chunking goes on."""

    def __init__(
        self,
        store: Store,
        pack_size: int,
        on_stored: Callable[[bytes, Location], None],
        uploads: int = 2,
    ) -> None:
        if not store.recipients:
            raise ConfigError("writing packs needs the age recipients")
        self.store = store
        self.pack_size = pack_size
        self.on_stored = on_stored
        self._pending: list[tuple[bytes, int, int, int, int]] = []
        self._pool = ThreadPoolExecutor(max_workers=uploads, thread_name_prefix="pack-upload")
        self._futures: list[Future[None]] = []
        self.packs_written = 0
        self.stored_bytes = 0
        self._new_pack()

    def _new_pack(self) -> None:
        raw = secrets.token_bytes(32)
        wrapped = bytes(pyrage.encrypt(raw, self.store.recipients))
        self._aead = ChaCha20Poly1305(raw)
        self._buf = bytearray(struct.pack("<I", len(wrapped)) + wrapped)
        self._header = len(self._buf)

    def add(self, blob_id: bytes, body: bytes, raw_len: int, kind: int) -> None:
        """Add an encoded (``compress``) blob."""
        nonce = secrets.token_bytes(_NONCE)
        sealed = nonce + self._aead.encrypt(nonce, body, blob_id)
        self._pending.append((blob_id, len(self._buf), len(sealed), raw_len, kind))
        self._buf += sealed
        if len(self._buf) >= self.pack_size:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        name = secrets.token_hex(16)
        data, entries = bytes(self._buf), self._pending
        self._pending = []
        self._new_pack()
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


def blob_from_pack(store: Store, blob_id: bytes, loc: Location, data: bytes) -> tuple[bytes, bytes]:
    """(opened body, verified plaintext) of a blob, from the whole pack's bytes."""
    where = f"chunk {blob_id.hex()} in pack {loc.pack}"
    aead = unwrap_key(store, loc.pack, data[:HEADER_READ])
    piece = data[loc.offset : loc.offset + loc.length]
    if len(piece) != loc.length:
        raise IntegrityError(f"{where}: the pack is shorter than its index says")
    body = open_blob(aead, blob_id, piece, where)
    return body, decode(store, blob_id, body, loc.raw, where)
