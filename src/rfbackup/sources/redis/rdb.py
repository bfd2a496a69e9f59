"""A streaming RDB walker: counts keys per database without decoding values.

It reads the header (``REDIS0011``), AUX fields, SELECTDB / RESIZEDB and skips every value
by its length prefixes, so memory stays constant whatever the snapshot's size. It runs in
its own thread, fed chunk by chunk (see :mod:`check`).
"""

from __future__ import annotations

import queue
from dataclasses import dataclass, field

from rfbackup.sources.redis.rdbfast import (
    _FAST_TYPES,
    _ONE_STRING,
    _STRINGS,
    MARGIN,
    _flen,
    _fstr,
    _fvalue,
)
from rfbackup.sources.redis.rdbfast import RdbFormatError as RdbFormatError


class _Closed(Exception):
    """The feed ended before the parser did."""


@dataclass
class Walked:
    version: int = 0
    aux: dict[str, str] = field(default_factory=dict)
    keys: dict[int, int] = field(default_factory=dict)
    expires: dict[int, int] = field(default_factory=dict)
    resizedb: dict[int, tuple[int, int]] = field(default_factory=dict)
    eof_at: int = -1  # offset just after the 0xFF opcode


class Feed:
    """Bytes arriving from another thread through a bounded queue (None = end)."""

    def __init__(self, depth: int = 8) -> None:
        self.q: queue.Queue[bytes | None] = queue.Queue(maxsize=depth)
        self.buf = b""
        self.pos = 0
        self.consumed = 0  # bytes before ``buf``
        self.ended = False  # the end marker (None) was taken from the queue

    def _fill(self) -> None:
        if not self.top_up():
            raise _Closed

    def top_up(self) -> bool:
        """Append the next chunk to the buffer; False at the end of the feed."""
        if self.ended:
            return False
        chunk = self.q.get()
        if chunk is None:
            self.ended = True
            return False
        self.consumed += self.pos
        self.buf = self.buf[self.pos :] + chunk
        self.pos = 0
        return True

    @property
    def offset(self) -> int:
        return self.consumed + self.pos

    def read(self, n: int) -> bytes:
        while len(self.buf) - self.pos < n:
            self._fill()
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def byte(self) -> int:
        if self.pos >= len(self.buf):
            self._fill()
            while not self.buf:
                self._fill()
        b = self.buf[self.pos]
        self.pos += 1
        return b

    def skip(self, n: int) -> None:
        while True:
            avail = len(self.buf) - self.pos
            if n <= avail:
                self.pos += n
                return
            n -= avail
            self.consumed += len(self.buf)
            self.buf, self.pos = b"", 0
            self._fill()

    def drain(self) -> None:
        """Swallow the rest so that the producer never blocks."""
        while not self.ended and self.q.get() is not None:
            pass
        self.ended = True


def _length(f: Feed) -> tuple[int, bool]:
    b = f.byte()
    kind = b >> 6
    if kind == 0:
        return b & 0x3F, False
    if kind == 1:
        return ((b & 0x3F) << 8) | f.byte(), False
    if kind == 3:
        return b & 0x3F, True
    if b == 0x80:
        return int.from_bytes(f.read(4), "big"), False
    if b == 0x81:
        return int.from_bytes(f.read(8), "big"), False
    raise RdbFormatError(f"bad length byte 0x{b:02x}")


def _len(f: Feed) -> int:
    n, encoded = _length(f)
    if encoded:
        raise RdbFormatError("encoded value where a length was expected")
    return n


def _skip_string(f: Feed) -> None:
    n, encoded = _length(f)
    if not encoded:
        f.skip(n)
    elif n == 0:
        f.skip(1)
    elif n == 1:
        f.skip(2)
    elif n == 2:
        f.skip(4)
    elif n == 3:  # LZF: compressed length, original length, data
        clen = _len(f)
        _len(f)
        f.skip(clen)
    else:
        raise RdbFormatError(f"unknown string encoding {n}")


def _string(f: Feed) -> bytes:
    n, encoded = _length(f)
    if not encoded:
        return f.read(n)
    if n in (0, 1, 2):
        size = (1, 2, 4)[n]
        return str(int.from_bytes(f.read(size), "little", signed=True)).encode()
    raise RdbFormatError("compressed AUX field")


def _skip_module_value(f: Feed) -> None:
    while True:
        op = _len(f)
        if op == 0:  # RDB_MODULE_OPCODE_EOF
            return
        if op in (1, 2):
            _len(f)
        elif op == 3:
            f.skip(4)
        elif op == 4:
            f.skip(8)
        elif op == 5:
            _skip_string(f)
        else:
            raise RdbFormatError(f"bad module opcode {op}")


def _skip_stream(f: Feed, t: int) -> None:
    for _ in range(_len(f)):  # listpack nodes: key + listpack
        _skip_string(f)
        _skip_string(f)
    for _ in range(3 if t == 15 else 8):  # length, last id (+ first id, max deleted, added)
        _len(f)
    for _ in range(_len(f)):  # consumer groups
        _skip_string(f)
        _len(f)
        _len(f)
        if t >= 19:
            _len(f)  # entries_read
        for _ in range(_len(f)):  # group PEL: id, delivery time, delivery count
            f.skip(24)
            _len(f)
        for _ in range(_len(f)):  # consumers
            _skip_string(f)
            f.skip(16 if t >= 21 else 8)  # seen time (+ active time)
            f.skip(16 * _len(f))  # consumer PEL: ids only


def _skip_value(f: Feed, t: int) -> None:
    if t in _ONE_STRING:
        _skip_string(f)
    elif t in _STRINGS:
        for _ in range(_len(f)):
            _skip_string(f)
    elif t == 4:
        for _ in range(2 * _len(f)):
            _skip_string(f)
    elif t == 5:
        for _ in range(_len(f)):
            _skip_string(f)
            f.skip(8)
    elif t == 3:
        for _ in range(_len(f)):
            _skip_string(f)
            n = f.byte()
            if n < 253:
                f.skip(n)
    elif t == 18:
        for _ in range(_len(f)):
            _len(f)
            _skip_string(f)
    elif t in (15, 19, 21):
        _skip_stream(f, t)
    elif t == 7:
        _len(f)
        _skip_module_value(f)
    else:
        raise RdbFormatError(f"unsupported value type {t}")


# --- the fast path: whole entries parsed from the buffer with plain ints ------------------
# An entry that runs past the buffer (or anything unexpected) is parsed again by the
# streaming functions above, which are the reference; these only save Python calls.


def walk(f: Feed) -> Walked:
    """Parse from the magic up to and including the EOF opcode."""
    w = Walked()
    magic = f.read(9)
    if magic[:5] != b"REDIS" or not magic[5:].isdigit():
        raise RdbFormatError("no REDIS magic at the start")
    w.version = int(magic[5:])
    db = 0
    expiring = False
    inline_strings = 0 in _FAST_TYPES  # the reference (tests) turns every fast path off
    while True:
        buf, pos = f.buf, f.pos
        if len(buf) - pos <= MARGIN and f.top_up():
            buf, pos = f.buf, f.pos
        blen = len(buf)
        limit = blen if f.ended else blen - MARGIN
        nk = nx = 0
        while pos < limit:  # the fast loop: whole entries inside the buffer
            t = buf[pos]
            try:
                if t == 0 and inline_strings:  # a string: key and value lengths inline
                    p = pos + 1
                    x = buf[p]
                    if x < 0x40:
                        p += 1 + x
                    elif x < 0x80:
                        p += 2 + (((x & 0x3F) << 8) | buf[p + 1])
                    else:
                        p = _fstr(buf, p)
                    x = buf[p]
                    if x < 0x40:
                        end = p + 1 + x
                    elif x < 0x80:
                        end = p + 2 + (((x & 0x3F) << 8) | buf[p + 1])
                    else:
                        end = _fstr(buf, p)
                elif t == 0xFC:  # expire time in ms, then the entry
                    if pos + 9 > blen:
                        break
                    pos += 9
                    expiring = True
                    continue
                elif t == 0xF8:  # LRU idle time
                    pos = _flen(buf, pos + 1)[1]
                    continue
                elif t == 0xF9:  # LFU counter
                    if pos + 2 > blen:
                        break
                    pos += 2
                    continue
                elif t in _FAST_TYPES:
                    end = _fvalue(buf, _fstr(buf, pos + 1), t)
                else:
                    break
            except (IndexError, RdbFormatError):
                break
            if end > blen:
                break
            pos = end
            nk += 1
            if expiring:
                nx += 1
                expiring = False
        f.pos = pos
        if nk:
            w.keys[db] = w.keys.get(db, 0) + nk
        if nx:
            w.expires[db] = w.expires.get(db, 0) + nx
        if pos >= limit and not f.ended:
            continue  # top up the buffer and go on fast
        t = f.byte()
        if t == 0xFF:
            w.eof_at = f.offset
            return w
        if t == 0xFA:
            k, v = _string(f), _string(f)
            w.aux[k.decode(errors="replace")] = v.decode(errors="replace")
        elif t == 0xFE:
            db = _len(f)
        elif t == 0xFB:
            w.resizedb[db] = (_len(f), _len(f))
        elif t == 0xFD:
            f.skip(4)
            expiring = True
        elif t == 0xFC:
            f.skip(8)
            expiring = True
        elif t == 0xF8:
            _len(f)
        elif t == 0xF9:
            f.skip(1)
        elif t == 0xF6:  # functions library
            _skip_string(f)
        elif t == 0xF5:  # module aux: module id, when-opcode, when, then module value
            _len(f)
            _len(f)
            _len(f)
            _skip_module_value(f)
        elif t == 0xF4:  # slot info (7.4+)
            _len(f)
            _len(f)
            _len(f)
        else:
            _skip_string(f)  # the key
            _skip_value(f, t)
            w.keys[db] = w.keys.get(db, 0) + 1
            if expiring:
                w.expires[db] = w.expires.get(db, 0) + 1
            expiring = False
