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

_CONTEXT = "stat-cache/2"
_STAT = struct.Struct("<QqqQ")  # size, mtime_ns, ctime_ns, inode
_HEAD = struct.Struct("<16sI")  # path key, length of the value
# path key -> packed stat + chunk ids: bytes, not tuples, so 200k files fit in little memory
Cache = dict[bytes, bytes]


def entry(
    size: int, mtime_ns: int, ctime_ns: int, ino: int, ids: list[bytes] | None = None
) -> bytes:
    return _STAT.pack(size, mtime_ns, ctime_ns, ino) + b"".join(ids or [])


def same_stat(value: bytes, now: bytes) -> bool:
    return value[: _STAT.size] == now[: _STAT.size]


def chunk_ids(value: bytes) -> list[bytes]:
    return [value[i : i + 32] for i in range(_STAT.size, len(value), 32)]


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
        pk, n = _HEAD.unpack_from(raw, pos)
        pos += _HEAD.size
        out[pk] = raw[pos : pos + n]
        pos += n
    return out


def save(store: Store, paths: list[str], cache: Cache, old_keys: list[str]) -> None:
    out = bytearray()
    for pk, value in cache.items():
        out += _HEAD.pack(pk, len(value))
        out += value
    raw = zstandard.ZstdCompressor(level=3).compress(out)  # no copy of 200k entries first
    name = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{time.time_ns() % 10**9:09d}"
    store.repo.put(f"{set_folder(store, paths)}{name}", store.key.seal(_CONTEXT, raw))
    store.repo.delete(old_keys)  # only a cache: the newest one replaces them
