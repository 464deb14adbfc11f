"""The strict-limiter case of `make bench-scale` (issue 27, adaptive pacing).

An API stricter than the budget's 5-s promise: at most `API_MAX_RPS` requests in
any sliding second (the fake's `rate_limit_sliding`), `API_MAX_RPS=8` and 6
pollers, as in the issue. Independent pacers at 8/6 - 0.2 = 1.13 requests/s each
still line up inside one second now and then; adaptive pacing (exporter.pacing)
is what keeps the 429s under 5 % of the export requests. The case is measured
like the others (bench/scale.py) and checked exactly once.
"""

from __future__ import annotations

from datetime import date

from bench.scale_plan import Scenario, Workload

NAME = "strict"
RATE = 8.0  # API_MAX_RPS and the limiter's requests in any second
POLLERS = 6
BRAND = 9301


def workload(smoke: bool, days: int | None = None) -> Workload:
    """One brand's backfill: 30 days of 2,000 locations (1,200 pages, about 3 minutes at
    the pollers' 6.8 requests/s); smoke: 12 days of 1,000 (240 pages, about 35 s:
    two windows for each poller, the second one paced by what the first learnt;
    each container's first 429 is how it learns, so fewer pages would be mostly
    that lesson)."""
    if smoke:
        return Workload(NAME, (BRAND,), 1000, date(2023, 1, 1), days or 12, "on-demand")
    return Workload(NAME, (BRAND,), 2000, date(2023, 1, 1), days or 30, "on-demand")


def scenario(smoke: bool, latency_s: float, days: int | None = None) -> Scenario:
    return Scenario(workload(smoke, days), POLLERS, latency_s, RATE, sliding=True)
