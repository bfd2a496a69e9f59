"""Indexes: which blob lives where. One object per backup run, sealed with the writer key.

The backup job reads them to deduplicate; a restore reads them to find blobs. They hold chunk
ids, pack names, offsets and sizes: no file names, no content.
"""

from __future__ import annotations

import json
import secrets
import struct
from dataclasses import dataclass

from rfbackup.errors import IntegrityError, RfBackupError
from rfbackup.logs import log
from rfbackup.sources.artifacts.store import INDEX, Store
from rfbackup.storage.base import read_bytes

FORMAT = "rfbackup-artifacts-index/1"
_ENTRY = struct.Struct("<32sIIIIB")
_CONTEXT = "index"


@dataclass(frozen=True, slots=True)
class Location:
    pack: str
    offset: int
    length: int
    raw: int
    kind: int


def encode(entries: dict[bytes, Location]) -> bytearray:
    packs = sorted({loc.pack for loc in entries.values()})
    number = {p: i for i, p in enumerate(packs)}
    header = json.dumps({"format": FORMAT, "packs": packs}).encode()
    out = bytearray(struct.pack("<I", len(header)) + header)
    for blob_id, loc in entries.items():
        out += _ENTRY.pack(blob_id, number[loc.pack], loc.offset, loc.length, loc.raw, loc.kind)
    return out  # sealed as it is: no copy


def decode(raw: bytes, where: str) -> dict[bytes, Location]:
    try:
        (hlen,) = struct.unpack_from("<I", raw)
        header = json.loads(raw[4 : 4 + hlen])
        if header["format"] != FORMAT:
            raise ValueError
        packs = [str(p) for p in header["packs"]]
        if any(len(p) != 32 or not all(c in "0123456789abcdef" for c in p) for p in packs):
            raise ValueError
        body = raw[4 + hlen :]
        if len(body) % _ENTRY.size:
            raise ValueError
        out = {}
        for blob_id, pack, offset, length, rawlen, kind in _ENTRY.iter_unpack(body):
            out[blob_id] = Location(packs[pack], offset, length, rawlen, kind)
        return out
    except (ValueError, KeyError, TypeError, IndexError, struct.error):
        raise IntegrityError(f"{where}: not a valid index") from None


def write(store: Store, entries: dict[bytes, Location]) -> str:
    plain = encode(entries)
    name = secrets.token_hex(16)
    store.repo.put(f"{INDEX}{name}", store.key.seal(_CONTEXT, plain))
    return name


class Index:
    """All indexes merged. ``bad`` names the ones that could not be read."""

    def __init__(self) -> None:
        self.entries: dict[bytes, Location] = {}
        self.objects: list[str] = []
        self.named_by: dict[str, set[str]] = {}  # pack -> the index objects that name it
        self.bad: list[tuple[str, str]] = []

    @classmethod
    def load(cls, store: Store, strict: bool) -> Index:
        """``strict``: an unreadable index raises (prune, restore); else warned and skipped
        (a backup then only deduplicates less)."""
        idx = cls()
        for obj in store.repo.list(INDEX):
            where = store.describe(obj.key)
            try:
                plain = store.key.open_sealed(_CONTEXT, read_bytes(store.repo, obj.key), where)
                found = decode(plain, where)
            except RfBackupError as exc:
                if strict:
                    raise
                log.warning("%s; its chunks will be stored again", exc)
                idx.bad.append((obj.key, str(exc)))
                continue
            idx.objects.append(obj.key)
            idx.entries.update(found)
            for loc in found.values():
                idx.named_by.setdefault(loc.pack, set()).add(obj.key)
        return idx

    def packs(self) -> set[str]:
        return {loc.pack for loc in self.entries.values()}
