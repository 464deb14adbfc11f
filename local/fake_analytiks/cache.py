"""Rendered answers kept by key, least recently used first out."""

from __future__ import annotations

import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable

from local.fake_analytiks.meter import Meter

CACHE_BYTES = 512 * 1024 * 1024


class PageCache:
    """Bodies kept up to ``limit`` bytes; zlib level 1 when ``compress`` (a few times
    more pages in the same memory, for the scale benchmark's thousands of pages)."""

    def __init__(self, meter: Meter, limit: int = CACHE_BYTES, compress: bool = False) -> None:
        self._meter = meter
        self._limit = limit
        self._compress = compress
        self._lock = threading.Lock()
        self._bodies: OrderedDict[tuple[object, ...], bytes] = OrderedDict()
        self._bytes = 0

    def get(self, key: tuple[object, ...], render: Callable[[], bytes]) -> bytes:
        with self._lock:
            body = self._bodies.get(key)
            if body is not None:
                self._bodies.move_to_end(key)
        if body is not None:
            self._meter.add(cache_hits=1)
            return zlib.decompress(body) if self._compress else body
        self._meter.add(cache_misses=1)
        body = render()
        kept = zlib.compress(body, 1) if self._compress else body
        with self._lock:
            if key not in self._bodies:
                self._bodies[key] = kept
                self._bytes += len(kept)
                while self._bytes > self._limit and len(self._bodies) > 1:
                    _, old = self._bodies.popitem(last=False)
                    self._bytes -= len(old)
        return body
