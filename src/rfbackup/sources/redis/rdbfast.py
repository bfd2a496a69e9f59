"""The RDB walker's fast path: skipping whole values inside one in-memory buffer, by their
length prefixes, without the per-byte feed (:mod:`rdb`). Also what the replay uses to cut
RESTORE payloads out of a checked snapshot (:mod:`replay`)."""

from __future__ import annotations


class RdbFormatError(Exception):
    """The bytes are not a well-formed RDB file."""


_ONE_STRING = frozenset((0, 9, 10, 11, 12, 13, 16, 17, 20))
_STRINGS = frozenset((1, 2, 14))

MARGIN = 256 * 1024
_FAST_TYPES = frozenset((0, 1, 2, 3, 4, 5, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21))


def _flen(b: bytes, p: int) -> tuple[int, int]:
    x = b[p]
    k = x >> 6
    if k == 0:
        return x & 0x3F, p + 1
    if k == 1:
        return ((x & 0x3F) << 8) | b[p + 1], p + 2
    if x == 0x80:
        return int.from_bytes(b[p + 1 : p + 5], "big"), p + 5
    if x == 0x81:
        return int.from_bytes(b[p + 1 : p + 9], "big"), p + 9
    raise RdbFormatError("bad length")


def _fstr(b: bytes, p: int) -> int:
    """The offset just after the string at ``p`` (lengths of one and two bytes inline)."""
    x = b[p]
    if x < 0x40:
        return p + 1 + x
    if x < 0x80:
        return p + 2 + (((x & 0x3F) << 8) | b[p + 1])
    if x >= 0xC0:
        e = x & 0x3F
        if e < 3:
            return p + (2, 3, 5)[e]  # int8, int16, int32 after the encoding byte
        if e == 3:  # LZF: compressed length, original length, data
            p += 1
            y = b[p]
            if y < 0x40:
                clen, p = y, p + 1
            elif y < 0x80:
                clen, p = ((y & 0x3F) << 8) | b[p + 1], p + 2
            else:
                clen, p = _flen(b, p)
            y = b[p]
            if y < 0x40:
                p += 1
            elif y < 0x80:
                p += 2
            else:
                p = _flen(b, p)[1]
            return p + clen
        raise RdbFormatError("bad string encoding")
    n, p = _flen(b, p)
    return p + n


def _fvalue(b: bytes, p: int, t: int) -> int:
    """The offset just after a value of type ``t`` starting at ``p`` in ``b``; IndexError
    (or an offset past the end) when it does not fit in ``b``."""
    if t in _ONE_STRING:
        return _fstr(b, p)
    if t in (15, 19, 21):
        return _fstream(b, p, t)
    n, p = _flen(b, p)
    if t in _STRINGS:
        for _ in range(n):
            p = _fstr(b, p)
    elif t == 4:
        for _ in range(2 * n):
            p = _fstr(b, p)
    elif t == 5:
        for _ in range(n):
            p = _fstr(b, p) + 8
    elif t == 18:  # quicklist 2: container kind + listpack per node
        for _ in range(n):
            _, p = _flen(b, p)
            p = _fstr(b, p)
    elif t == 3:  # zset with scores as strings: a length byte (253-255: nan, +inf, -inf)
        for _ in range(n):
            p = _fstr(b, p)
            x = b[p]
            p += 1 if x >= 253 else 1 + x
    elif t == 7:  # module value: n is the module id, then opcodes up to EOF (0)
        while (op := _flen(b, p))[0]:
            p = op[1]
            if op[0] in (1, 2):
                p = _flen(b, p)[1]
            elif op[0] == 3:
                p += 4
            elif op[0] == 4:
                p += 8
            elif op[0] == 5:
                p = _fstr(b, p)
            else:
                raise RdbFormatError(f"bad module opcode {op[0]}")
        p = op[1]
    else:
        raise RdbFormatError(f"unsupported value type {t}")
    return p


def _fstream(b: bytes, p: int, t: int) -> int:
    n, p = _flen(b, p)
    for _ in range(n):  # listpack nodes: key + listpack
        p = _fstr(b, _fstr(b, p))
    for _ in range(3 if t == 15 else 8):  # length, last id (+ first id, max deleted, added)
        p = _flen(b, p)[1]
    groups, p = _flen(b, p)
    for _ in range(groups):
        p = _flen(b, _flen(b, _fstr(b, p))[1])[1]  # name, last id
        if t >= 19:
            p = _flen(b, p)[1]  # entries_read
        pel, p = _flen(b, p)
        for _ in range(pel):  # id, delivery time, delivery count
            p = _flen(b, p + 24)[1]
        consumers, p = _flen(b, p)
        for _ in range(consumers):
            p = _fstr(b, p) + (16 if t >= 21 else 8)  # name, seen (+ active) time
            cpel, p = _flen(b, p)
            p += 16 * cpel
    return p
