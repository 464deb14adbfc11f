"""The API rate budget: each container paces its data requests under its share of `API_MAX_RPS`.

`share()` is the ceiling, `Spacing` the pure controller (a 429 cuts the rate, which
climbs back along a CUBIC curve, never above the ceiling; no clock of its own),
`Pacer` the container's thread-safe front that reads the clock and sleeps.
Why these numbers: docs/decisions.md, "Scale" and "Adaptive pacing".
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable
from typing import Final

WINDOW_S: Final = 5.0
# A 429 cuts the rate to BETA x what it was; a cut from the ceiling is made good
# RECOVERY_S later; the rate never falls below FLOOR x the ceiling. 429s within
# EPISODE_S of a cut answer requests sent before it took effect: one cut per
# episode, as TCP cuts once per round trip. Chosen by simulation (docs/decisions.md).
BETA: Final = 0.9
RECOVERY_S: Final = 60.0
FLOOR: Final = 0.1
EPISODE_S: Final = 1.0


def share(api_max_rps: float, max_concurrency: int) -> float:
    """Requests per second one container may send at most (docs/decisions.md, "Scale")."""
    if api_max_rps <= 0 or max_concurrency < 1:
        raise ValueError("api_max_rps must be > 0 and max_concurrency >= 1")
    fair = api_max_rps / max_concurrency
    return max(fair - 1.0 / WINDOW_S, fair / 2.0)


class Spacing:
    """When each request may go: at least `1 / rate(now)` after the previous one, and
    not before a `Retry-After` has passed. Every method takes the time (any monotonic
    seconds), so the controller is a pure function of the calls made on it.

    `rate(now) <= ceiling` always: requests are never closer than `1 / ceiling`.
    """

    def __init__(
        self,
        ceiling: float,
        *,
        adaptive: bool = True,
        beta: float = BETA,
        recovery_s: float = RECOVERY_S,
        floor: float = FLOOR,
        first_after_s: float = 0.0,
    ) -> None:
        if not ceiling > 0:
            raise ValueError(f"ceiling must be > 0, got {ceiling!r}")
        if not (0 < beta < 1 and recovery_s > 0 and 0 < floor <= 1):
            raise ValueError("need 0 < beta < 1, recovery_s > 0 and 0 < floor <= 1")
        self.ceiling = ceiling
        self.adaptive = adaptive
        self._beta, self._recovery_s, self._floor = beta, recovery_s, floor * ceiling
        self._last = float("-inf")  # the previous request's slot
        self._first_after_s = first_after_s  # the first request waits this long
        self._hold = float("-inf")  # no request before this (a Retry-After)
        self._cut_at: float | None = None  # the last cut, None = at the ceiling
        self._cut_from = ceiling  # the rate just before that cut
        self.cuts = 0

    def rate(self, now: float) -> float:
        """Requests per second allowed at `now`."""
        if self._cut_at is None:
            return self.ceiling
        # CUBIC: W(t) = C (t - K)^3 + W_max with W(0) = beta W_max: quick at first,
        # flat near the rate that was refused (W(K) = W_max), then probing above it.
        # C is fixed so that a cut from the ceiling is made good in `recovery_s`.
        c = self.ceiling * (1.0 - self._beta) / self._recovery_s**3
        k = math.cbrt(self._cut_from * (1.0 - self._beta) / c)
        rate = c * (max(0.0, now - self._cut_at) - k) ** 3 + self._cut_from
        return min(self.ceiling, max(self._floor, rate))

    def slot(self, now: float) -> float:
        """The earliest moment the next request may go (not taking it)."""
        if self._last == float("-inf"):
            return max(now + self._first_after_s, self._hold)
        return max(now, self._last + 1.0 / self.rate(now), self._hold)

    def take(self, now: float) -> float:
        """Take the next slot; returns its moment (>= now)."""
        slot = self.slot(now)
        self._last = slot
        if self._cut_at is not None and self.rate(slot) >= self.ceiling:
            self._cut_at = None  # recovered: the curve is done with
        return slot

    def throttled(self, now: float, retry_after_s: float | None = None) -> None:
        """A 429 came back at `now`: hold off for `retry_after_s`, cut the rate."""
        if retry_after_s is not None and retry_after_s > 0:
            self._hold = max(self._hold, now + retry_after_s)
        if not self.adaptive:
            return
        if self._cut_at is not None and now - self._cut_at < EPISODE_S:
            return
        self._cut_from = self.rate(now)
        self._cut_at = now
        self.cuts += 1


class Pacer:
    """A container's `Spacing`, shared by its threads: `acquire()` takes the next slot
    and sleeps until it, `delay()` says how long that would be (taking nothing),
    `throttled()` reports a 429. No burst allowance: an idle pacer saves no credit.

    `jitter` (a draw in [0, 1)) delays the first request by up to one interval (at
    most 1 s): containers started together do not send in step, each second.
    """

    def __init__(
        self,
        rate: float,
        *,
        adaptive: bool = True,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] | None = None,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be > 0, got {rate!r}")
        self.rate = rate  # the ceiling: the container's share
        first = 0.0 if jitter is None else jitter() * min(1.0, 1.0 / rate)
        self.spacing = Spacing(rate, adaptive=adaptive, first_after_s=first)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self.waited_s = 0.0  # total time callers slept for their slots

    def delay(self) -> float:
        """Seconds the next `acquire()` would sleep now."""
        with self._lock:
            now = self._clock()
            return self.spacing.slot(now) - now

    def acquire(self) -> float:
        """Take the next slot and sleep until it; returns the seconds slept."""
        with self._lock:
            now = self._clock()
            wait = self.spacing.take(now) - now
            self.waited_s += wait
        if wait > 0:
            self._sleep(wait)
        return wait

    def throttled(self, retry_after_s: float | None = None) -> None:
        """The API answered 429 (with this `Retry-After`, if it gave one in seconds)."""
        with self._lock:
            self.spacing.throttled(self._clock(), retry_after_s)

    def current_rate(self) -> float:
        with self._lock:
            return self.spacing.rate(self._clock())


def for_settings(api_max_rps: float | None, max_concurrency: int) -> Pacer | None:
    """The pacer of one container, or None without a budget (unlimited)."""
    if api_max_rps is None:
        return None
    return Pacer(share(api_max_rps, max_concurrency), jitter=random.random)
