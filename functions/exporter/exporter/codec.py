"""JSON parsing and gzip compression, behind one small module so either can be swapped.

orjson parses the API's pages several times faster than the stdlib json.
Compression is stdlib zlib at level 5: on our JSON Lines it stays within ~6 %
of level 6's size at a bit over half its CPU (ISA-L's fastest levels were
faster still but 20 % larger: more S3 bytes and more Athena scan for every
query, forever). It runs on a background thread, since zlib releases the GIL,
so compressing one page overlaps shaping the next (docs/performance.md).
The output is an ordinary gzip member that Athena, DuckDB and gunzip read.
"""

from __future__ import annotations

import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Final

import orjson

JSONDecodeError = orjson.JSONDecodeError

GZIP_LEVEL: Final[int] = 5
_GZIP_WBITS: Final[int] = 31  # 16 + 15: a gzip header and trailer around raw deflate
# Uncompressed chunks allowed to queue up behind the compressor before the
# producer waits: bounds memory when compression is the slower side.
_MAX_PENDING: Final[int] = 8


def loads(data: bytes) -> Any:
    return orjson.loads(data)


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def dumps_pretty(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)


class GzipWriter:
    """An in-memory gzip member that grows as text is added: holds compressed bytes, not rows.

    With an executor, `write` hands the compression to it; the executor must
    have a single worker so chunks are compressed in the order written.
    """

    __slots__ = ("_chunks", "_compressor", "_executor", "raw_bytes", "rows")

    def __init__(self, executor: ThreadPoolExecutor | None = None) -> None:
        self._compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, _GZIP_WBITS)
        self._executor = executor
        self._chunks: list[Future[bytes] | bytes] = []
        self.rows = 0
        self.raw_bytes = 0

    def write(self, data: bytes, rows: int) -> None:
        self.rows += rows
        self.raw_bytes += len(data)
        if self._executor is None:
            self._chunks.append(self._compressor.compress(data))
            return
        if len(self._chunks) >= _MAX_PENDING:
            pending = self._chunks[-_MAX_PENDING]
            if isinstance(pending, Future):
                pending.result()
        self._chunks.append(self._executor.submit(self._compressor.compress, data))

    def finish(self) -> bytes:
        parts = [c.result() if isinstance(c, Future) else c for c in self._chunks]
        parts.append(self._compressor.flush())
        self._chunks = []
        return b"".join(parts)
