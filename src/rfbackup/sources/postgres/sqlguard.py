"""psql never runs a meta-command that pg_dump did not write.

A plain dump is a psql script, and psql's backslash commands (``\\!``, ``\\o |cmd``,
``\\copy ... program``) run programs on the restore host. Whoever can write the stored file
(a bucket writer, without signing) could add one. The stream psql reads is therefore:

    \\restrict R          our own random key, new for every restore
    the dump's header    minus pg_dump's own ``\\restrict K`` line
    the dump's body      passed through unchanged; K must not appear in it
    the footer           "-- PostgreSQL database dump complete", nothing after it
    \\unrestrict R

Between ``\\restrict R`` and ``\\unrestrict R`` psql (15.14, 16.10, 17.6 and later) refuses
every backslash command, wherever it appears in a line; COPY data (ended by ``\\.``) is not a
command and still loads. Nobody else knows R, so nothing inside the dump can lift the
restriction. On top of that the dump's own key K, recorded in the manifest at backup time,
must match, and any data after the completion footer fails the restore before psql sees it.
The roles script taken from the roles sidecar runs inside its own fresh key as well.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from typing import Protocol

from rfbackup.errors import IntegrityError, RestoreError

HEADER = b"--\n-- PostgreSQL database dump\n"
COMPLETE = b"\n--\n-- PostgreSQL database dump complete\n--\n"
TAIL = 8192  # bytes held back until the end of the stream, so the footer can be checked
_RESTRICT = re.compile(rb"\\restrict ([A-Za-z0-9]+)\r?\n")
_FOOTER = re.compile(
    rb"\n--\n-- PostgreSQL database dump complete\n--\n\s*(?:\\unrestrict ([A-Za-z0-9]+)\n\s*)?\Z"
)
# psql learned \restrict in these minor releases (CVE-2025-8714).
_RESTRICT_SINCE = {13: 22, 14: 19, 15: 14, 16: 10, 17: 6}


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


def restrict_key(head: bytes) -> str | None:
    """The ``\\restrict`` key in the first lines of a plain dump (pg_dump >= 15.14), or None."""
    for line in head.split(b"\n", 12)[:12]:
        m = _RESTRICT.fullmatch(line + b"\n")
        if m:
            return m[1].decode()
    return None


def psql_can_restrict(version_text: str) -> bool:
    """From ``psql --version`` output: does this psql know ``\\restrict``?"""
    m = re.search(r"(\d+)\.(\d+)", version_text)
    if m is None:
        return False
    major, minor = int(m[1]), int(m[2])
    return major >= 18 or minor >= _RESTRICT_SINCE.get(major, 10**6)


class GuardedDump:
    """A ``read(n)`` stream of a plain dump, wrapped as described above.

    ``expected_key`` is the manifest's record of pg_dump's key (None: no manifest, or a dump
    from a pg_dump without ``\\restrict``). Raises IntegrityError on anything pg_dump would
    not have written; the caller then stops psql before its single transaction commits.
    """

    def __init__(self, stream: Readable, expected_key: str | None, where: str) -> None:
        self.stream, self.expected_key, self.where = stream, expected_key, where
        self.ours = secrets.token_hex(32)
        self._chunks = self._generate()
        self._buf = b""

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buf) < n:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buf += chunk
        if n < 0:
            out, self._buf = self._buf, b""
        else:
            out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def _refuse(self, why: str) -> IntegrityError:
        return IntegrityError(f"{self.where} {why}; refusing to feed it to psql")

    def _generate(self) -> Iterator[bytes]:
        head = self._read_head()
        if not head.startswith(HEADER):
            raise self._refuse("does not start with pg_dump's header, so it is not a plain dump")
        key = restrict_key(head)
        if self.expected_key is not None and key != self.expected_key:
            raise self._refuse("does not carry the \\restrict key recorded in its manifest")
        if key is not None:
            head = head.replace(f"\\restrict {key}\n".encode(), b"", 1)
        yield f"\\restrict {self.ours}\n".encode()
        pending, seen_tail = head, b""
        marker = key.encode() if key else None
        while chunk := self.stream.read(1024 * 1024):
            pending += chunk
            if len(pending) > TAIL:
                out, pending = pending[:-TAIL], pending[-TAIL:]
                if marker is not None and marker in seen_tail + out:
                    raise self._refuse("repeats pg_dump's \\restrict key inside the dump")
                seen_tail = out[-len(marker) :] if marker else b""
                yield out
        m = _FOOTER.search(pending)
        if m is None:
            if COMPLETE in pending:
                raise self._refuse("has data after pg_dump's completion footer")
            raise self._refuse("lacks pg_dump's completion footer (truncated or not a dump)")
        if m[1] is not None and m[1].decode() != key:
            raise self._refuse("ends with an \\unrestrict key that does not match its header")
        if key is not None and m[1] is None:
            raise self._refuse("lacks the \\unrestrict line that closes its \\restrict")
        body = pending[: m.start()]
        if marker is not None and marker in seen_tail + body:
            raise self._refuse("repeats pg_dump's \\restrict key inside the dump")
        yield body + COMPLETE + f"\n\\unrestrict {self.ours}\n".encode()

    def _read_head(self) -> bytes:
        head = b""
        while len(head) < 4096:
            chunk = self.stream.read(4096 - len(head))
            if not chunk:
                break
            head += chunk
        return head


def restricted(script: str, psql_version: str) -> str:
    """A small script of our own making (the roles to create) with every meta-command
    blocked: its lines come from a stored sidecar, so they get the same treatment."""
    _require_restrict(psql_version)
    key = secrets.token_hex(32)
    return f"\\restrict {key}\n{script}\n\\unrestrict {key}\n"


def _require_restrict(psql_version: str) -> None:
    if not psql_can_restrict(psql_version):
        raise RestoreError(
            f"{psql_version or 'psql'} cannot block meta-commands (\\restrict); "
            "restoring needs psql 13.22, 14.19, 15.14, 16.10, 17.6 or later"
        )


def for_psql(stream: Readable, expected_key: str | None, where: str, psql_version: str) -> Readable:
    """The guarded stream, once we know this psql will honour ``\\restrict``."""
    _require_restrict(psql_version)
    return GuardedDump(stream, expected_key, where)
