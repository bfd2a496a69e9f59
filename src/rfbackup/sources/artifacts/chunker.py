"""Content-defined chunking (FastCDC 2020, pyfastcdc), with the repository's secret gear seed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from pyfastcdc import FastCDC

from rfbackup.sources.artifacts.store import ChunkerParams


class Chunker:
    def __init__(self, params: ChunkerParams, seed: int) -> None:
        self.params = params
        self._cdc = FastCDC(params.avg, min_size=params.min, max_size=params.max, seed=seed)

    def chunks(self, fh: BinaryIO, size_hint: int) -> Iterator[memoryview | bytes]:
        """The chunks of ``fh``; each view is valid only until the next one is taken.

        A file no larger than the minimum chunk is one chunk, read in one call."""
        if size_hint <= self.params.min:
            data = fh.read(self.params.min + 1)
            if len(data) <= self.params.min:
                if data:
                    yield data
                return
            head = data
        else:
            head = b""
        if head:
            yield from self._stream(_Prefixed(head, fh))
        else:
            yield from self._stream(fh)

    def _stream(self, fh: object) -> Iterator[memoryview]:
        for chunk in self._cdc.cut_stream(fh):  # type: ignore[arg-type]
            yield chunk.data


class _Prefixed:
    """``head`` then the rest of ``fh``: a small file that grew while being read."""

    def __init__(self, head: bytes, fh: BinaryIO) -> None:
        self._head = head
        self._fh = fh

    def read(self, n: int) -> bytes:
        if self._head:
            out, self._head = self._head[:n], self._head[n:]
            return out
        return self._fh.read(n)
