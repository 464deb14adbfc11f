"""`make bench-scale`'s workloads (a year's backfill, a 200-brand night) and scenarios
(a workload at N pollers, an API latency and an optional rate limit)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

PAGE_SIZE = 50


@dataclass(frozen=True)
class Workload:
    name: str
    brands: tuple[int, ...]
    locations: int
    first: date
    days: int
    trigger: str  # "on-demand" (a backfill) or "scheduled" (the nightly run)

    @property
    def pages(self) -> int:
        """v3 requests the work needs: one window per day (WINDOW_DAYS=1), 50 locations a page."""
        return len(self.brands) * self.days * math.ceil(self.locations / PAGE_SIZE)

    @property
    def brand_days(self) -> int:
        return len(self.brands) * self.days

    def day_list(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range(self.days)]


@dataclass(frozen=True)
class Scenario:
    workload: Workload
    workers: int
    latency_s: float
    rate_limit: float | None = None  # the fake's limit and API_MAX_RPS alike
    sliding: bool = False  # the limit holds in any second, not as a bucket (scale_strict)

    @property
    def name(self) -> str:
        rate = f"-r{self.rate_limit:g}" if self.rate_limit else ""
        return f"{self.workload.name}-w{self.workers}{rate}{'-s1' if self.sliding else ''}"

    @property
    def limit_s(self) -> float:
        """The API-bound limit: pages x latency / workers, or requests / rate limit."""
        w = self.workload
        latency_bound = w.pages * self.latency_s / self.workers
        rate_bound = w.pages / self.rate_limit if self.rate_limit else 0.0
        return max(latency_bound, rate_bound)


def yesterday() -> date:
    return datetime.now(UTC).date() - timedelta(days=1)


def workloads(
    smoke: bool, days: int | None = None, brands: int | None = None
) -> dict[str, Workload]:
    """The two workloads of the issue (`days` / `brands` shrink them for a partial run)."""
    if smoke:
        return {
            "backfill": Workload("backfill", (9101,), 100, date(2023, 1, 1), 3, "on-demand"),
            "nightly": Workload("nightly", (9201, 9202, 9203), 100, yesterday(), 1, "scheduled"),
        }
    nightly = tuple(range(9201, 9201 + (brands or 200)))
    return {
        "backfill": Workload("backfill", (9101,), 2000, date(2023, 1, 1), days or 365, "on-demand"),
        "nightly": Workload("nightly", nightly, 2000, yesterday(), 1, "scheduled"),
    }
