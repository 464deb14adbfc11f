"""One gzip member per (partition, window, invocation), compressed on a helper thread.

Compression is zlib-ng's deflate at level 5 (the `zlib-ng` package of the
layer; stdlib zlib, same level, where it is missing): on our JSON Lines it is
4 % larger than stdlib level 6 at a third of its CPU, and both faster and
smaller than stdlib level 5 (ISA-L's fastest levels were faster still but 20 %
larger: more S3 bytes and more Athena scan for every query, forever). It runs
on a background thread, since deflate releases the GIL, so compressing one
page overlaps shaping the next, even on one core: it overlaps waiting for the
API (docs/performance.md). The output is an ordinary gzip member that Athena,
DuckDB and gunzip read.
"""

from __future__ import annotations

import tempfile
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, Final

from exporter.zlibs import zlib

GZIP_LEVEL: Final[int] = 5
_GZIP_WBITS: Final[int] = 31  # 16 + 15: a gzip header and trailer around raw deflate
# Uncompressed chunks allowed to queue up behind the compressor before the
# producer waits: bounds memory when compression is the slower side.
_MAX_PENDING: Final[int] = 2
_SPOOL_BYTES: Final[int] = 1 << 20
_BATCH_BYTES: Final[int] = 1 << 20


class GzipWriter:
    """A gzip file built as lines arrive.

    Compressed output is spooled to a temporary file past `_SPOOL_BYTES`, so the
    function's memory does not grow with the export's size (Lambda's /tmp holds
    it; the upload streams from it). With an executor, `write` hands the
    compression to it; the executor must have a single worker so chunks are
    compressed in the order written.
    """

    __slots__ = ("_buffer", "_buffered", "_compressor", "_executor", "_pending", "_sink", "rows")

    def __init__(self, executor: ThreadPoolExecutor | None = None) -> None:
        self._compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, _GZIP_WBITS)
        self._executor = executor
        self._sink: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115
        self._pending: deque[Future[None]] = deque()
        self._buffer: list[bytes] = []
        self._buffered = 0
        self.rows = 0

    def _compress(self, data: bytes) -> None:
        self._sink.write(self._compressor.compress(data))

    def write(self, data: bytes, rows: int) -> None:
        self.rows += rows
        self._buffer.append(data)
        self._buffered += len(data)
        # Compress in large batches: every hand-over to the compressor thread costs
        # a GIL switch (up to 5 ms while this thread is busy), so fewer is faster.
        if self._buffered >= _BATCH_BYTES:
            self._submit()

    def _submit(self) -> None:
        data = b"".join(self._buffer)
        self._buffer, self._buffered = [], 0
        if self._executor is None:
            self._compress(data)
            return
        while len(self._pending) >= _MAX_PENDING:
            self._pending.popleft().result()
        self._pending.append(self._executor.submit(self._compress, data))

    def finish(self) -> tuple[IO[bytes], int]:
        """The finished gzip file, rewound, and its size. The caller closes it."""
        while self._pending:
            self._pending.popleft().result()
        # The last batch is compressed here: the executor may be shut down by now.
        self._compress(b"".join(self._buffer))
        self._buffer, self._buffered = [], 0
        self._sink.write(self._compressor.flush())
        size = self._sink.tell()
        self._sink.seek(0)
        return self._sink, size
