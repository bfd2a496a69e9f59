"""The backup job's stat cache: for each file of a path set, the (size, mtime, ctime, inode)
it had and the chunks it was made of. A file whose four values are unchanged is not read again.

Paths appear only as keyed hashes, and the object is sealed with the writer key: the backup job
can read it, nobody else; it holds no names and no content.
"""

from __future__ import annotations

import struct
import time

import zstandard

from rfbackup.errors import RfBackupError
from rfbackup.logs import log
from rfbackup.sources.artifacts.store import CACHE, Store
from rfbackup.storage.base import read_bytes

_CONTEXT = "stat-cache"
_HEAD = struct.Struct("<16sQqqQI")
Stat = tuple[int, int, int, int]  # size, mtime_ns, ctime_ns, inode
Cache = dict[bytes, tuple[Stat, tuple[bytes, ...]]]


def set_folder(store: Store, paths: list[str]) -> str:
    return f"{CACHE}{store.key.name('path-set', chr(0).join(sorted(paths)).encode())}/"


def path_key(store: Store, rel: str) -> bytes:
    return bytes.fromhex(store.key.name("path", rel.encode("utf-8", "surrogateescape")))


def load(store: Store, paths: list[str]) -> tuple[Cache, list[str]]:
    """The newest readable cache of this path set ({} if none) and the keys of all of them."""
    keys = sorted(o.key for o in store.repo.list(set_folder(store, paths)))
    for key in reversed(keys):
        try:
            sealed = read_bytes(store.repo, key)
            raw = store.key.open_sealed(_CONTEXT, sealed, store.describe(key))
            return _decode(zstandard.ZstdDecompressor().decompress(raw)), keys
        except (RfBackupError, zstandard.ZstdError, struct.error, ValueError) as exc:
            log.warning("stat cache %s unusable (%s): files will be read again", key, exc)
    return {}, keys


def _decode(raw: bytes) -> Cache:
    out: Cache = {}
    pos = 0
    while pos < len(raw):
        pk, size, mtime, ctime, ino, n = _HEAD.unpack_from(raw, pos)
        pos += _HEAD.size
        ids = tuple(raw[pos + 32 * i : pos + 32 * (i + 1)] for i in range(n))
        pos += 32 * n
        out[pk] = ((size, mtime, ctime, ino), ids)
    return out


def save(store: Store, paths: list[str], cache: Cache, old_keys: list[str]) -> None:
    out = bytearray()
    for pk, ((size, mtime, ctime, ino), ids) in cache.items():
        out += _HEAD.pack(pk, size, mtime, ctime, ino, len(ids))
        out += b"".join(ids)
    raw = zstandard.ZstdCompressor(level=3).compress(bytes(out))
    name = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{time.time_ns() % 10**9:09d}"
    store.repo.put(f"{set_folder(store, paths)}{name}", store.key.seal(_CONTEXT, raw))
    store.repo.delete(old_keys)  # only a cache: the newest one replaces them
