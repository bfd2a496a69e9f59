"""Replay a checked RDB file into any Redis by RESTORE, straight from the file.

A DUMP payload is the value as the RDB file stores it (type byte + value encoding, written by
the same ``rdbSaveObjectType``/``rdbSaveObject`` calls), then the RDB version (2 bytes) and
the CRC64 of both (8 bytes), little-endian. So each entry of the snapshot becomes a RESTORE
without a scratch server, SCAN or DUMP: the file is read once, in 4 MiB blocks, and the
target checks every payload's CRC itself. Expiry times are absolute in the RDB and go over
as ``ABSTTL`` (Redis >= 5); keys already expired are skipped and counted.

Not replayed (as DUMP/RESTORE could not either): Redis Functions libraries and module AUX
data; they are counted and reported.
"""

from __future__ import annotations

import re
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from rfbackup.errors import RestoreError
from rfbackup.sources.redis.check import crc64
from rfbackup.sources.redis.rdbfast import RdbFormatError, _flen, _fstr, _fvalue

BLOCK = 4 << 20
TAIL = struct.Struct("<HQ")  # a DUMP payload ends with the RDB version and its CRC64


# (db, key, kind, value, expire_ms): ``kind`` is the RDB value type (the payload's first
# byte), ``value`` its encoding as the file holds it, ``expire_ms`` absolute or -1. Plain
# tuples: a million keys a second go through here.
Entry = tuple[int, bytes, int, memoryview, int]


@dataclass
class Skipped:
    functions: int = 0  # Redis Functions libraries (0xF6)
    module_aux: int = 0  # module AUX records (0xF5)
    expired: dict[int, int] = field(default_factory=dict)  # per db, when the replay saw them


def entries(fh: BinaryIO, skipped: Skipped, now_ms: int | None = None) -> Iterator[Entry]:
    """Every key of the RDB file ``fh`` in order. Keys whose expiry is at or before
    ``now_ms`` (default: the current time, read as we go) are counted in ``skipped``."""
    buf = fh.read(BLOCK)
    if buf[:5] != b"REDIS" or not buf[5:9].isdigit():
        raise RdbFormatError("no REDIS magic at the start")
    pos, db, expire, eof = 9, 0, -1, False
    view, blen = memoryview(buf), len(buf)
    while True:
        try:
            t = buf[pos]
            if t < 0xF4:  # a key and its value; lengths under 64 bytes inline
                x = buf[pos + 1]
                if x < 0x40:
                    kend = pos + 2 + x
                    key = buf[pos + 2 : kend]
                else:
                    kend = _fstr(buf, pos + 1)
                    key = _key(buf, pos + 1, kend)
                if t == 0:
                    x = buf[kend]
                    if x < 0x40:
                        end = kend + 1 + x
                    elif x < 0x80:
                        end = kend + 2 + (((x & 0x3F) << 8) | buf[kend + 1])
                    else:
                        end = _fstr(buf, kend)
                else:
                    end = _fvalue(buf, kend, t)
                if end > blen:
                    raise IndexError
                pos = end
                if expire < 0:
                    yield db, key, t, view[kend:end], -1
                elif expire > (now_ms or int(time.time() * 1000)):
                    yield db, key, t, view[kend:end], expire
                    expire = -1
                else:
                    skipped.expired[db] = skipped.expired.get(db, 0) + 1
                    expire = -1
                continue
            p = pos + 1
            if t == 0xFF:
                return
            if t == 0xFC:
                expire, p = int.from_bytes(_take(buf, p, 8), "little"), p + 8
            elif t == 0xFD:
                expire, p = 1000 * int.from_bytes(_take(buf, p, 4), "little"), p + 4
            elif t == 0xFE:
                db, p = _flen(buf, p)
            elif t == 0xFB:
                p = _flen(buf, _flen(buf, p)[1])[1]
            elif t == 0xFA:
                p = _fstr(buf, _fstr(buf, p))
            elif t == 0xF8:
                p = _flen(buf, p)[1]
            elif t == 0xF9:
                p += 1
            elif t == 0xF6:
                p = _fstr(buf, p)
                skipped.functions += 1
            elif t == 0xF5:  # module id, when-opcode, when, then a module value
                p = _fvalue(buf, _flen(buf, _flen(buf, p)[1])[1], 7)
                skipped.module_aux += 1
            elif t == 0xF4:
                p = _flen(buf, _flen(buf, _flen(buf, p)[1])[1])[1]
            else:
                raise RdbFormatError(f"unknown opcode 0x{t:02x}")
            if p > blen:
                raise IndexError
            pos = p
        except IndexError:  # the entry runs past the buffer: read more, parse it again
            if eof:
                raise RdbFormatError("the file ends inside an entry") from None
            more = fh.read(max(BLOCK, len(buf) - pos))
            eof = not more
            buf = buf[pos:] + more
            pos, view, blen = 0, memoryview(buf), len(buf)


def _take(buf: bytes, p: int, n: int) -> bytes:
    if p + n > len(buf):
        raise IndexError
    return buf[p : p + n]


def _key(b: bytes, p: int, end: int) -> bytes:
    """The key string at ``b[p:end]``: raw, an encoded integer or LZF-compressed."""
    x = b[p]
    if x < 0x40:
        return b[p + 1 : end]
    if x < 0x80:
        return b[p + 2 : end]
    if x < 0xC0:
        return b[_flen(b, p)[1] : end]
    if x & 0x3F < 3:
        return str(int.from_bytes(b[p + 1 : end], "little", signed=True)).encode()
    _, q = _flen(b, p + 1)
    size, q = _flen(b, q)
    return lzf_decompress(b[q:end], size)


def lzf_decompress(data: bytes, size: int) -> bytes:
    """liblzf's format, as Redis writes compressed strings (keys only ever need it here)."""
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        ctrl = data[i]
        i += 1
        if ctrl < 32:  # a literal run of ctrl + 1 bytes
            out += data[i : i + ctrl + 1]
            i += ctrl + 1
            continue
        length = ctrl >> 5
        if length == 7:
            length += data[i]
            i += 1
        ref = len(out) - ((ctrl & 0x1F) << 8) - data[i] - 1
        i += 1
        if ref < 0:
            raise RdbFormatError("bad LZF back reference")
        for k in range(length + 2):  # byte by byte: the copy may overlap its own output
            out.append(out[ref + k])
    if len(out) != size:
        raise RdbFormatError("LZF data does not expand to its stated length")
    return bytes(out)


class Payloads:
    """The 10 bytes that end a DUMP payload: RDB version, then the CRC64 of everything
    before (type byte, value, version). The two version bytes go through a byte table:
    cheaper than another call into the CRC library."""

    def __init__(self, rdb_version: int) -> None:
        self.model = crc64()
        self.rdb_version = rdb_version
        self._after_type = [self.model.calc(bytes([t])) for t in range(256)]
        self._table = self._after_type  # reflected, init 0, no xor: table[i] = crc(byte i)
        self._v0, self._v1 = rdb_version & 0xFF, rdb_version >> 8

    def crc(self, kind: int, value: memoryview) -> int:
        """The payload's CRC64: over the type byte, the value and the two version bytes."""
        table = self._table
        crc: int = self.model.calc(value, self._after_type[kind])
        crc = table[(crc ^ self._v0) & 0xFF] ^ (crc >> 8)
        crc = table[(crc ^ self._v1) & 0xFF] ^ (crc >> 8)
        return crc

    def tail(self, kind: int, value: memoryview) -> bytes:
        return TAIL.pack(self.rdb_version, self.crc(kind, value))


def glob_regex(pattern: str) -> re.Pattern[bytes]:
    """Redis's glob (``*``, ``?``, ``[a-z]``, ``[^x]``, backslash escapes) as a regex that
    must match a whole key."""
    p = pattern.encode()
    out, i, n = [], 0, len(p)
    while i < n:
        c = p[i : i + 1]
        if c == b"*":
            out.append(b".*")
        elif c == b"?":
            out.append(b".")
        elif c == b"\\" and i + 1 < n:
            i += 1
            out.append(re.escape(p[i : i + 1]))
        elif c == b"[":
            j, neg, items = i + 1, False, []
            if p[j : j + 1] == b"^":
                neg, j = True, j + 1
            while j < n and p[j : j + 1] != b"]":
                if p[j : j + 1] == b"\\" and j + 1 < n:
                    j += 1
                elif j + 2 < n and p[j + 1 : j + 2] == b"-":
                    lo, hi = sorted((p[j], p[j + 2]))
                    items.append(re.escape(bytes([lo])) + b"-" + re.escape(bytes([hi])))
                    j += 3
                    continue
                items.append(re.escape(p[j : j + 1]))
                j += 1
            if j >= n:
                raise RestoreError(f"--match {pattern!r}: '[' without its ']'")
            cls = b"".join(items)
            if neg:
                out.append(b"[^" + cls + b"]" if cls else b".")
            else:
                out.append(b"[" + cls + b"]" if cls else b"(?!)")
            i = j
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile(b"".join(out), re.DOTALL)
