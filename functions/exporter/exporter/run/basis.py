"""Each time basis is a dataset of its own (docs/decisions.md, "One dataset per time basis").

What the commit needs beyond the partitions of its basis: refusing to mix with the
old layout's folders (`brand_id=N/dt=D/`, before `time_basis=` existed), and the
irregular local days a local run reports in its manifest.
"""

from __future__ import annotations

from typing import Any

from exporter.run.context import RunContext
from exporter.run.counters import Counters
from exporter.run.records import RunPlan

MIGRATION = 'docs/runbook.md, "Migrating to one dataset per time basis"'


def old_layout_failure(ctx: RunContext, plan: RunPlan) -> str | None:
    """Fail the run, before its commit begins, if the brand still has old-layout objects.

    One LIST of at most one page, brand-wide: the old folders hold rows of both bases
    under one `dt`, which no query of the new table reads, and committing beside them
    would leave a brand half migrated. Recorded as any failure is (first reason wins);
    returns the run's recorded error, or None.
    """
    ledger = ctx.ledger
    keys = ledger.keys(plan)
    found = next(iter(ctx.store.list_keys(keys.old_layout)), None)
    if found is None or ledger.committed_manifest(plan) is not None:
        return None  # (committed by an earlier lease holder: the run can only go forward)
    ledger.record_failure(
        plan,
        f"S3 layout: brand {keys.brand_id} still has objects in the layout before time "
        f"bases were separate datasets ({found[-120:]!r}); nothing is committed. "
        f"Migrate them first ({MIGRATION}), then run again",
    )
    return ledger.failure(keys)


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
