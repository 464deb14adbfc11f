"""The API rate budget: each invocation spaces its requests at its share of `API_MAX_RPS`.

The deployment may send `API_MAX_RPS` requests per second in all, and at most
`MAX_CONCURRENCY` invocations call the API at once (the event source mapping's
maximum concurrency; with a budget, scheduled runs do no window inline:
docs/decisions.md, "Scale"). Each invocation therefore spaces its requests at
least `1 / share` seconds apart, where

    share = API_MAX_RPS / MAX_CONCURRENCY - 1 / WINDOW_S        (WINDOW_S = 5 s)

Why the subtraction: a stream whose requests are at least `1 / s` apart puts at
most `ceil(T * s) < T * s + 1` of them into any T seconds, so N streams at
`s = R / N - 1 / T` put fewer than `T * R` into any T seconds: the budget holds
averaged over every 5 s window, not just in the long run. Where that would
leave less than half of `R / N` (a budget of fewer than 2.5 x N / 5 requests a
second), the share is `R / (2 N)`: the long-run rate stays under R, and the
5 s guarantee is given up, said so in the docs.

Every data request counts, retries included; token requests do not (another
endpoint, one per container and hour). The pacer lives as long as the
container (`exporter.wiring` builds one per cold start), so the spacing holds
across the invocations a warm container serves, not just within one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Final

WINDOW_S: Final = 5.0


def share(api_max_rps: float, max_concurrency: int) -> float:
    """Requests per second one invocation may send (see the module docstring)."""
    if api_max_rps <= 0 or max_concurrency < 1:
        raise ValueError("api_max_rps must be > 0 and max_concurrency >= 1")
    fair = api_max_rps / max_concurrency
    return max(fair - 1.0 / WINDOW_S, fair / 2.0)


class Pacer:
    """Spaces calls at least `1 / rate` seconds apart, whichever thread makes them.

    No burst allowance: the first call goes at once, every later one waits for
    its slot. `delay()` says how long the next call would wait (without taking
    the slot), `acquire()` takes the next slot and sleeps until it.
    """

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be > 0, got {rate!r}")
        self.rate = rate
        self.interval = 1.0 / rate
        self._clock = clock
        self._sleep = sleep
        self._next = float("-inf")  # the earliest moment of the next call
        self._lock = threading.Lock()
        self.waited_s = 0.0  # total time callers slept for their slots

    def delay(self) -> float:
        """Seconds the next `acquire()` would sleep now."""
        with self._lock:
            return max(0.0, self._next - self._clock())

    def acquire(self) -> float:
        """Take the next slot and sleep until it; returns the seconds slept."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
            wait = slot - now
            self.waited_s += wait
        if wait > 0:
            self._sleep(wait)
        return wait


def for_settings(api_max_rps: float | None, max_concurrency: int) -> Pacer | None:
    """The pacer of one container, or None without a budget (unlimited)."""
    if api_max_rps is None:
        return None
    return Pacer(share(api_max_rps, max_concurrency))
