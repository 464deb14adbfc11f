from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from exporter import memory


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_the_heap_a_walk_freed_goes_back_to_the_os() -> None:
    # A walk's leftovers: many small buffers freed, a few kept between them, so
    # glibc cannot shrink its heap from the top and keeps the free pages resident.
    blocks = [bytes(1000) for _ in range(100_000)]  # about 100 MB
    kept = blocks[::16]
    del blocks
    before = rss_kib()
    assert memory.release_free_memory()
    assert before - rss_kib() > 50_000  # KiB: most of the 94 MB freed between survivors
    assert len(kept) == 6_250


def test_without_malloc_trim_nothing_is_done(monkeypatch: pytest.MonkeyPatch) -> None:
    class NoTrim:  # musl's or macOS's C library: no malloc_trim
        pass

    def libc(_name: Any) -> NoTrim:
        return NoTrim()

    memory._malloc_trim.cache_clear()
    monkeypatch.setattr("ctypes.CDLL", libc)
    try:
        assert memory.release_free_memory() is False
    finally:
        memory._malloc_trim.cache_clear()
