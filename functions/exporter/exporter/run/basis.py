"""Each time basis is a dataset of its own (docs/decisions.md, "One dataset per time basis").

What the commit needs beyond the partitions of its basis: where to read about the
old layout's folders (`brand_id=N/dt=D/`, refused by `commit.old_layout_failure`),
and the irregular local days a local run reports in its manifest.
"""

from __future__ import annotations

from typing import Any

from exporter.run.counters import Counters
from exporter.run.records import RunPlan

MIGRATION = 'docs/runbook.md, "Migrating to one dataset per time basis"'


def irregular_local_days(plan: RunPlan, api: Counters) -> dict[str, Any] | None:
    """The manifest's `irregularLocalDays`: a local run's location-days whose bucket
    count is not 23, 24 or 25 (docs/contracts.md, "Manifest"); None if there are none."""
    if plan.basis != "local" or not api.irregular_location_days:
        return None
    listed = sorted((str(d), int(loc), int(n)) for d, loc, n in api.irregular_days)
    return {
        "locationDays": api.irregular_location_days,
        "listed": [{"date": d, "locationId": loc, "buckets": n} for d, loc, n in listed],
    }
