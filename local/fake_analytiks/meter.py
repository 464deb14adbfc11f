"""The server's counters: what was asked, what was answered, which faults struck."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from local.fake_analytiks.protocol import DATA_PATHS


@dataclass
class Stats:
    """Counters of a server (``FakeAnalytiks.stats`` returns a consistent copy)."""

    calls: Counter[str] = field(default_factory=Counter)  # path -> requests
    responses: Counter[int] = field(default_factory=Counter)  # status -> responses sent
    path_responses: Counter[tuple[str, int]] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)  # data faults: kind ("429", ...) -> n
    token_faults: Counter[str] = field(default_factory=Counter)  # token endpoint faults
    tokens_issued: int = 0
    pages_served: int = 0  # successful v3 responses
    bytes_served: int = 0  # response body bytes written
    cache_hits: int = 0
    cache_misses: int = 0

    @property
    def data_calls(self) -> int:
        return sum(n for path, n in self.calls.items() if path in DATA_PATHS)

    def copy(self) -> Stats:
        return Stats(
            Counter(self.calls),
            Counter(self.responses),
            Counter(self.path_responses),
            Counter(self.faults),
            Counter(self.token_faults),
            self.tokens_issued,
            self.pages_served,
            self.bytes_served,
            self.cache_hits,
            self.cache_misses,
        )


class Meter:
    """Thread-safe ``Stats`` plus the arrival time of every data request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stats = Stats()
        self._arrivals: list[float] = []

    def snapshot(self) -> Stats:
        with self._lock:
            return self._stats.copy()

    def restore(self, stats: Stats) -> None:
        with self._lock:
            self._stats = stats.copy()

    def reset(self) -> None:
        with self._lock:
            self._stats = Stats()
            self._arrivals = []

    def arrivals(self) -> list[float]:
        with self._lock:
            return list(self._arrivals)

    def add(self, **kw: int) -> None:
        with self._lock:
            for name, n in kw.items():
                setattr(self._stats, name, getattr(self._stats, name) + n)

    def call(self, path: str) -> None:
        with self._lock:
            self._stats.calls[path] += 1
            if path in DATA_PATHS:
                self._arrivals.append(time.time())

    def response(self, path: str, status: int, nbytes: int) -> None:
        with self._lock:
            self._stats.responses[status] += 1
            self._stats.path_responses[path, status] += 1
            self._stats.bytes_served += nbytes

    def fault(self, kind: str, data: bool) -> None:
        with self._lock:
            (self._stats.faults if data else self._stats.token_faults)[kind] += 1
