"""The replication transfer's reads: whole chunks out whatever the socket's read sizes, and
the end mark found wherever the reads split it (over a real socket pair)."""

from __future__ import annotations

import contextlib
import os
import random
import socket
import threading
from collections.abc import Callable, Iterator

import pytest
from pydantic import SecretStr

from rfbackup.errors import SourceError
from rfbackup.sources.redis.fetch import EOF_MARK_SIZE, _exactly, _until_mark
from rfbackup.sources.redis.target import RedisTarget

TARGET = RedisTarget(port=1, password=SecretStr("x"))
MARK = b"0123456789abcdef0123456789abcdef01234567"


def _send(sock: socket.socket, data: bytes, cuts: list[int]) -> None:
    try:
        last = 0
        for cut in [*cuts, len(data)]:
            sock.sendall(data[last:cut])
            last = cut
    except BrokenPipeError:  # the reader had what it wanted and closed its end
        pass
    finally:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)


def _run(
    data: bytes, cuts: list[int], reader: Callable[[socket.socket], Iterator[bytes]]
) -> list[bytes]:
    ours, theirs = socket.socketpair()
    sender = threading.Thread(target=_send, args=(theirs, data, cuts))
    sender.start()
    try:
        return list(reader(ours))
    finally:
        sender.join()
        theirs.close()


@pytest.mark.parametrize("seed", range(6))
def test_until_mark_yields_the_payload_in_whole_chunks(seed: int) -> None:
    rng = random.Random(seed)
    chunk = rng.choice([64, 100, 4096])
    payload = os.urandom(rng.choice([0, 1, 39, 40, 41, chunk, chunk + 40, 5 * chunk + 7]))
    data = payload + MARK
    # Reads split anywhere, the mark included; the mark only counts at the end of a read.
    cuts = sorted(rng.sample(range(1, len(data) - EOF_MARK_SIZE + 1), min(8, len(payload))))
    got = _run(data, cuts, lambda s: _until_mark(s, MARK, chunk, TARGET))
    assert b"".join(got) == payload
    assert all(len(c) == chunk for c in got[:-1])


def test_until_mark_mark_split_across_the_buffer_rotation() -> None:
    chunk = 64
    payload = os.urandom(chunk + 20)  # the mark starts 20 bytes before the buffer is full
    data = payload + MARK
    cuts = [chunk + EOF_MARK_SIZE]  # the first read fills the buffer exactly
    got = _run(data, cuts, lambda s: _until_mark(s, MARK, chunk, TARGET))
    assert b"".join(got) == payload


def test_until_mark_without_the_mark_is_a_lost_connection() -> None:
    with pytest.raises(SourceError, match="no end-of-file mark"):
        _run(os.urandom(300), [100], lambda s: _until_mark(s, MARK, 64, TARGET))


@pytest.mark.parametrize("size", [0, 1, 63, 64, 65, 1000])
def test_exactly_yields_size_bytes_in_whole_chunks(size: int) -> None:
    payload = os.urandom(size)
    extra = b"after the payload"  # never read: the reader stops at size bytes
    got = _run(payload + extra, [1, 7] if size > 7 else [], lambda s: _exactly(s, size, 64, TARGET))
    assert b"".join(got) == payload
    assert all(len(c) == 64 for c in got[:-1])


def test_exactly_short_stream_is_a_lost_connection() -> None:
    with pytest.raises(SourceError, match="connection lost after 50 of 100 bytes"):
        _run(os.urandom(50), [], lambda s: _exactly(s, 100, 64, TARGET))
