"""Fault injection: the knobs, the seeded draw of each request's fault, the rate limiter."""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field


def _deque(items: Iterable[str]) -> deque[str]:
    return items if isinstance(items, deque) else deque(items)


@dataclass
class Faults:
    """Fault injection knobs; mutable while the server runs.

    ``queue`` / ``token_queue``: each data (v1-v4) / token request pops the next
    entry and suffers it instead of being served: ``"429"``, ``"500"``, ``"502"``,
    ``"503"`` (any 3-digit status works), ``"reset"`` (abrupt close, RST),
    ``"truncate"`` (full Content-Length, half the body, close) or ``"slow"``
    (sleep ``slow_seconds`` first, then answer normally); ``"ok"`` is served
    normally and not counted as a fault: it aims a later entry at a later request.
    ``rate_*`` draw from the server's seeded RNG (one draw per data request).
    ``retry_after`` is the ``Retry-After`` header of 429s (None = no header).
    ``latency``: every data response takes at least this long (the server's own
    work counts towards it, as an API's would). ``revoke_after``: after that
    many successful data calls with one token, the token is revoked (401).
    ``rate_limit``: at most that many data requests per second (a token bucket
    holding ``rate_limit_burst`` requests, one second's worth by default); above
    it a request is answered 429 at once, with ``retry_after``. Off (None) by default.
    ``rate_limit_sliding``: stricter, at most ``floor(rate_limit)`` accepted data
    requests in any sliding second (a log of them; refused ones are not counted).
    """

    queue: deque[str] = field(default_factory=deque)
    token_queue: deque[str] = field(default_factory=deque)
    rate_429: float = 0.0
    rate_5xx: float = 0.0
    rate_reset: float = 0.0
    rate_truncate: float = 0.0
    retry_after: float | None = 1
    latency: float = 0.0
    slow_seconds: float = 5.0
    revoke_after: int | None = None
    rate_limit: float | None = None
    rate_limit_burst: float | None = None
    rate_limit_sliding: bool = False

    def __post_init__(self) -> None:
        self.queue = _deque(self.queue)
        self.token_queue = _deque(self.token_queue)


class FaultDice:
    """Picks the fault a request suffers: its queue first, then the seeded rates."""

    def __init__(self, seed: int) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)

    def reseed(self, seed: int) -> None:
        with self._lock:
            self._rng = random.Random(seed)

    def draw(self, faults: Faults, data: bool) -> str | None:
        with self._lock:
            queue = faults.queue if data else faults.token_queue
            if queue:  # a plain list assigned at run time works too
                return str(queue.popleft() if isinstance(queue, deque) else queue.pop(0))
            if not data:
                return None
            r = self._rng.random()
            for kind, rate in (
                ("429", faults.rate_429),
                ("5xx", faults.rate_5xx),
                ("reset", faults.rate_reset),
                ("truncate", faults.rate_truncate),
            ):
                if r < rate:
                    return self._rng.choice(("500", "502", "503")) if kind == "5xx" else kind
                r -= rate
        return None


class RateLimiter:
    """A token bucket refilled at ``faults.rate_limit`` per second (read on every take),
    or with ``faults.rate_limit_sliding`` a log of the last second's accepted requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bucket: tuple[float, float] | None = None  # (tokens, at monotonic)
        self._accepted: deque[float] = deque()  # the sliding limiter's last second

    def over(self, faults: Faults) -> bool:
        """Take a token from the bucket; True if there was none."""
        limit = faults.rate_limit
        if limit is None or limit <= 0:
            return False
        burst = faults.rate_limit_burst or max(1.0, limit)
        now = time.monotonic()
        with self._lock:
            if faults.rate_limit_sliding:
                while self._accepted and self._accepted[0] <= now - 1.0:
                    self._accepted.popleft()
                if len(self._accepted) >= math.floor(limit):
                    return True
                self._accepted.append(now)
                return False
            tokens, at = self._bucket if self._bucket is not None else (burst, now)
            tokens = min(burst, tokens + (now - at) * limit)
            if tokens < 1.0:
                self._bucket = (tokens, now)
                return True
            self._bucket = (tokens - 1.0, now)
            return False
