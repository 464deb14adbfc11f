"""Handing freed heap back to the operating system (glibc's `malloc_trim`).

CPython frees a walk's pages, lines and buffers, but glibc keeps the freed chunks
mapped: the commit that follows in the same container then builds each day's
Arrow table on top of the walk's leftover heap, and that sum is the invocation's
peak RSS. One `malloc_trim(0)` before the commit's Parquet rebuild returns the
free pages of every arena (a few ms); the table's own pages fault in again as it
is built. Measured on `make bench`'s 2,000 x 5-day run, interleaved: peak RSS
139-153 MB -> 130-143 MB for the same CPU (docs/performance.md, "Flat memory").
A lower `MALLOC_TRIM_THRESHOLD_` instead trims on every free: 118 MB, but twice
the system time.
"""

from __future__ import annotations

import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    import ctypes  # noqa: PLC0415 -- at the first commit, not at every cold start

    # The symbols the interpreter is linked with: glibc's on Lambda and Linux, none
    # of this name on macOS or musl, where freeing is left to the allocator.
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim  # type: ignore[no-any-return]


def release_free_memory() -> bool:
    """Return the heap's free pages to the OS; False where the allocator has no way."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
