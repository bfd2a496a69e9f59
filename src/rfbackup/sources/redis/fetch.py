"""Fetch the RDB: over the replication protocol, or BGSAVE + the local file as a fallback.

The primary method is the one ``redis-cli --rdb`` uses: a raw connection, ``REPLCONF capa
eof`` (so the server may send a diskless stream), ``REPLCONF rdb-only 1`` (Redis >= 7: no
replication backlog after the RDB), then ``SYNC`` (or ``PSYNC ? -1``). The reply is either
``$<len>`` followed by exactly len bytes, or ``$EOF:<40 bytes>`` followed by the payload and
the same 40-byte mark. Before it the server may send bare ``\\n`` keepalives. The payload is
yielded in chunks: constant memory, no temporary file.

When SYNC and PSYNC are both refused (managed services), ``BGSAVE`` runs and we wait on
``rdb_bgsave_in_progress`` / ``rdb_saves`` / ``rdb_last_bgsave_status``, then read
``dir``/``dbfilename`` when that file is reachable from here.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from rfbackup.errors import SourceError
from rfbackup.sources.redis.connection import (
    client,
    one_line_errors,
    open_socket,
    read_line,
    send_command,
)
from rfbackup.sources.redis.target import RedisTarget

EOF_MARK_SIZE = 40


@dataclass
class Fetched:
    method: str  # "sync", "psync" or "bgsave-file"
    chunks: Iterator[bytes]
    refused: list[str] = field(default_factory=list)  # methods tried first, with the reason


def fetch(
    target: RedisTarget,
    *,
    chunk_size: int = 1 << 20,
    timeout: float = 300.0,
    fallback: bool = True,
) -> Fetched:
    """Start a snapshot transfer; the returned chunks are the RDB file's bytes."""
    refused: list[str] = []
    got = _replication(target, chunk_size, timeout, refused)
    if got is not None:
        return Fetched(got[0], got[1], refused)
    if not fallback:
        raise SourceError(f"redis {target.display}: cannot take a snapshot: {'; '.join(refused)}")
    try:
        chunks = _bgsave_file(target, chunk_size, timeout)
    except SourceError as exc:
        why = str(exc).split(": ", 1)[-1]
        raise SourceError(
            f"redis {target.display}: cannot take a snapshot: {'; '.join(refused)}; "
            f"BGSAVE fallback: {why}"
        ) from None
    return Fetched("bgsave-file", chunks, refused)


def _replication(
    target: RedisTarget, chunk_size: int, timeout: float, refused: list[str]
) -> tuple[str, Iterator[bytes]] | None:
    sock = open_socket(target, timeout)
    try:
        for option in ((b"capa", b"eof"), (b"rdb-only", b"1")):
            send_command(sock, b"REPLCONF", *option)
            read_line(sock)  # an error here (older server, REPLCONF blocked) is not fatal
        for name, cmd in (("sync", [b"SYNC"]), ("psync", [b"PSYNC", b"?", b"-1"])):
            send_command(sock, *cmd)
            line = read_line(sock, skip_newlines=True)
            if line.startswith(b"+FULLRESYNC"):
                line = read_line(sock, skip_newlines=True)
            if line.startswith(b"-"):
                reason = line[1:].decode(errors="replace")
                refused.append(f"{name.upper()} refused ({reason})")
                continue
            if line.startswith(b"$EOF:") and len(line) >= 5 + EOF_MARK_SIZE:
                mark = line[5 : 5 + EOF_MARK_SIZE]
                return name, _until_mark(sock, mark, chunk_size, target)
            if line.startswith(b"$") and line[1:].isdigit():
                return name, _exactly(sock, int(line[1:]), chunk_size, target)
            raise SourceError(
                f"redis {target.display}: unexpected reply to {name.upper()}: {line[:80]!r}"
            )
    except (OSError, ConnectionError) as exc:
        sock.close()
        raise SourceError(f"redis {target.display}: replication handshake failed: {exc}") from None
    except BaseException:
        sock.close()
        raise
    sock.close()
    return None


def _exactly(sock: socket.socket, size: int, chunk_size: int, t: RedisTarget) -> Iterator[bytes]:
    """``size`` bytes, yielded in chunks of ``chunk_size`` (the last one shorter): the socket
    is read into one buffer until a chunk is full, so that the consumers (check, compressor,
    hash) see a few large chunks instead of thousands of small recv() results."""
    buf = bytearray(chunk_size)
    view = memoryview(buf)
    left = size
    try:
        while left:
            want = min(chunk_size, left)
            filled = 0
            while filled < want:
                try:
                    n = sock.recv_into(view[filled:want])
                except OSError as exc:
                    got = size - left + filled
                    raise SourceError(
                        f"redis {t.display}: transfer failed after {got} of {size} bytes: {exc}"
                    ) from None
                if not n:
                    raise SourceError(
                        f"redis {t.display}: connection lost after {size - left + filled} of "
                        f"{size} bytes"
                    )
                filled += n
            left -= want
            yield bytes(view[:want])
    finally:
        sock.close()


def _until_mark(
    sock: socket.socket, mark: bytes, chunk_size: int, t: RedisTarget
) -> Iterator[bytes]:
    """The payload up to the 40-byte end mark, in chunks of ``chunk_size`` (the last one
    shorter). The mark counts when a read ends with it, as in redis-cli; the last 40 bytes
    received may be the mark, so they are never yielded early."""
    size = chunk_size + EOF_MARK_SIZE
    buf = bytearray(size)
    view = memoryview(buf)
    filled = 0  # bytes in buf; the first ``chunk_size`` go out once the buffer is full
    received = 0
    try:
        while True:
            try:
                n = sock.recv_into(view[filled:])
            except OSError as exc:
                raise SourceError(
                    f"redis {t.display}: transfer failed after {received} bytes: {exc}"
                ) from None
            if not n:
                raise SourceError(
                    f"redis {t.display}: connection lost after {received} bytes "
                    "(no end-of-file mark)"
                )
            received += n
            filled += n
            if filled >= EOF_MARK_SIZE and view[filled - EOF_MARK_SIZE : filled] == mark:
                if filled > EOF_MARK_SIZE:
                    yield bytes(view[: filled - EOF_MARK_SIZE])
                return
            if filled == size:
                yield bytes(view[:chunk_size])
                view[:EOF_MARK_SIZE] = view[chunk_size:]
                filled = EOF_MARK_SIZE
    finally:
        sock.close()


def _bgsave_file(target: RedisTarget, chunk_size: int, timeout: float) -> Iterator[bytes]:
    """BGSAVE, wait for it to finish well, then open ``dir/dbfilename`` (before returning)."""
    c = client(target, timeout=min(timeout, 60.0))
    try:
        with one_line_errors(target, "BGSAVE"):
            deadline = time.monotonic() + timeout
            info = c.info("persistence")
            while info["rdb_bgsave_in_progress"]:  # someone else's save: wait, then ours
                info = _poll(c, deadline)
            saves = info.get("rdb_saves", -1)
            last = info["rdb_last_save_time"]
            c.execute_command("BGSAVE", "SCHEDULE")
            info = c.info("persistence")
            while info["rdb_bgsave_in_progress"] or (
                info.get("rdb_saves", -1) == saves and info["rdb_last_save_time"] == last
            ):
                info = _poll(c, deadline)
            if info["rdb_last_bgsave_status"] != "ok":
                raise SourceError(f"redis {target.display}: BGSAVE failed on the server")
        with one_line_errors(target, "CONFIG GET dir/dbfilename"):
            folder = c.config_get("dir")
            name = c.config_get("dbfilename")
        path = Path(_one(folder, "dir")) / _one(name, "dbfilename")
    finally:
        c.close()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise SourceError(
            f"redis {target.display}: {path} is not reachable here: {exc.strerror}"
        ) from None
    return _read_file(os.fdopen(fd, "rb"), chunk_size)


def _poll(c: Any, deadline: float) -> dict[str, Any]:
    if time.monotonic() > deadline:
        raise SourceError("timed out waiting for BGSAVE")
    time.sleep(0.05)
    info: dict[str, Any] = c.info("persistence")
    return info


def _one(reply: dict[Any, Any], key: str) -> str:
    for k, v in reply.items():
        k, v = (x.decode() if isinstance(x, bytes) else str(x) for x in (k, v))
        if k == key:
            return v
    raise SourceError(f"CONFIG GET {key} returned nothing")


def _read_file(fh: BinaryIO, chunk_size: int) -> Iterator[bytes]:
    with fh:
        while chunk := fh.read(chunk_size):
            yield chunk
