"""JSON parsing and gzip compression, behind one small module so either can be swapped.

orjson parses the API's pages several times faster than the stdlib; ISA-L's
deflate (python-isal) compresses several times faster than zlib at a ratio
close to zlib's level 6 on our JSON Lines. Both release the GIL. The output is
an ordinary gzip member that Athena, DuckDB and gunzip read.
"""

from __future__ import annotations

from typing import Any, Final

import orjson
from isal import isal_zlib

JSONDecodeError = orjson.JSONDecodeError

# ISA-L levels are 0..3; level 3 is the one that stays within a few percent of
# zlib level 6 on repetitive JSON Lines (see docs/performance.md).
GZIP_LEVEL: Final[int] = 3
_GZIP_WBITS: Final[int] = 31  # 16 + 15: a gzip header and trailer around raw deflate


def loads(data: bytes) -> Any:
    return orjson.loads(data)


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def dumps_pretty(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)


class GzipWriter:
    """An in-memory gzip member that grows as text is added: holds compressed bytes, not rows."""

    __slots__ = ("_chunks", "_compressor", "raw_bytes", "rows")

    def __init__(self) -> None:
        self._compressor = isal_zlib.compressobj(GZIP_LEVEL, isal_zlib.DEFLATED, _GZIP_WBITS)
        self._chunks: list[bytes] = []
        self.rows = 0
        self.raw_bytes = 0

    def write(self, data: bytes, rows: int) -> None:
        self.rows += rows
        self.raw_bytes += len(data)
        chunk = self._compressor.compress(data)
        if chunk:
            self._chunks.append(chunk)

    def finish(self) -> bytes:
        self._chunks.append(self._compressor.flush())
        body = b"".join(self._chunks)
        self._chunks = []
        return body
