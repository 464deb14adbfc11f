"""zlib and gzip: zlib-ng's where the layer has it, the stdlib's otherwise.

zlib-ng writes and reads the same formats (gzip members, CRC-32) in a fraction of
the CPU: deflate at level 5 in a third of stdlib zlib's time for 4 % larger
output, inflate in a third, CRC-32 folded with carry-less multiplies
(docs/performance.md, "zlib-ng level 5"). The layer ships it (layers/requirements.in);
the stdlib fallback keeps the code running, only slower, where it is missing.
"""

from __future__ import annotations

try:
    from zlib_ng import gzip_ng as gzip
    from zlib_ng import zlib_ng as zlib
except ImportError:  # pragma: no cover - the layer ships zlib-ng
    import gzip  # type: ignore[no-redef]
    import zlib  # type: ignore[no-redef]

# The digests of the lake coverage (exporter/rows.py): the same CRC-32 either way,
# so digests compare across runs whatever wrote them (tests/unit/test_rows.py).
crc32 = zlib.crc32

__all__ = ["crc32", "gzip", "zlib"]
