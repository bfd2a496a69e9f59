"""Is this a whole pg_dump? Checked on the stream as it is read, without a pass of its own.

A plain dump starts with pg_dump's header and ends with its completion footer
(``-- PostgreSQL database dump complete``); a custom dump starts with ``PGDMP`` and its
table of contents. An empty file, or a dump cut short (the usual output of a failed
``pg_dump | gzip``), has neither and is refused.
"""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

from rfbackup.errors import IntegrityError
from rfbackup.pipeline import Readable, read_chunks
from rfbackup.sources.postgres import tools

PLAIN_HEADER = b"--\n-- PostgreSQL database dump\n--\n"
PLAIN_FOOTER = b"\n-- PostgreSQL database dump complete\n--\n"
CUSTOM_MAGIC = b"PGDMP"
TAIL = 4096  # pg_dump writes at most a \unrestrict line and blank lines after the footer


class DumpShape:
    """Wraps the decompressed dump: refuses a missing header on the first read, and a missing
    footer at the end of the stream, before the consumer sees EOF."""

    def __init__(self, inner: Readable, dump_format: str, where: str) -> None:
        self.inner, self.format, self.where = inner, dump_format, where
        self._head = b""
        self._head_ok = False
        self._tail = b""

    @property
    def _header(self) -> bytes:
        return CUSTOM_MAGIC if self.format == "custom" else PLAIN_HEADER

    def read(self, n: int = -1, /) -> bytes:
        data: bytes = self.inner.read(n)
        if not self._head_ok:
            self._head += data[: len(self._header)]
            if len(self._head) >= len(self._header) or not data:
                self._check_head()
        if data:
            self._tail = (self._tail + data[-TAIL:])[-TAIL:]  # never copies a whole chunk
        else:
            self._check_end()
        return data

    def _check_head(self) -> None:
        if not self._head:
            raise IntegrityError(f"{self.where} is empty: not a pg_dump backup")
        if not self._head.startswith(self._header):
            what = "custom-format (PGDMP)" if self.format == "custom" else "plain SQL"
            raise IntegrityError(f"{self.where} does not start like a {what} pg_dump file")
        self._head_ok = True

    def _check_end(self) -> None:
        if self.format == "custom":
            return  # pg_restore reads the TOC and every block it names; a cut is its error
        if PLAIN_FOOTER not in self._tail:
            raise IntegrityError(
                f"{self.where} ends without pg_dump's '-- PostgreSQL database dump complete' "
                "footer: the dump is incomplete"
            )


def read_through(stream: Readable, dump_format: str, where: str, bin_dir: Path | None) -> None:
    """Read a whole dump that has no manifest, as a test before any database is touched: it
    must decompress, have pg_dump's shape, and (custom format) a table of contents that
    ``pg_restore --list`` can read."""
    shaped = DumpShape(stream, dump_format, where)
    if dump_format != "custom":
        for _ in read_chunks(shaped):
            pass
        return
    proc = subprocess.Popen(
        [tools.find("pg_restore", bin_dir), "--list"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stderr is not None
    stderr = tools.StderrTail(proc.stderr)
    feeding = True
    try:
        for chunk in read_chunks(shaped):
            if feeding:
                try:
                    proc.stdin.write(chunk)
                except BrokenPipeError:  # it has read the table of contents and left
                    feeding = False
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
    except BaseException:
        tools.stop(proc)
        raise
    if proc.wait() != 0:
        last = stderr.last
        raise IntegrityError(
            f"{where} has no readable table of contents "
            f"(pg_restore --list: {stderr.first_error or last})"
        )
