"""The one notification a run sends (DESIGN §5): pure functions from run state to a message."""

from __future__ import annotations

from typing import Any

from exporter.state import RunPlan


def success_message(
    plan: RunPlan, manifest: dict[str, Any], manifest_uri: str
) -> tuple[str, dict[str, Any]]:
    totals = manifest["totals"]
    subject = (
        f"wifi-export succeeded: brand {plan.brand_id} {plan.first_day}..{plan.last_day} "
        f"({totals['rows']:,} rows)"
    )
    body = {
        **_common(plan),
        "status": "succeeded",
        "partitions": [
            {k: p[k] for k in ("dt", "rows", "objects", "bytes")} for p in manifest["partitions"]
        ],
        "totals": totals,
        "api": manifest["api"],
        "durationSeconds": manifest["durationSeconds"],
        "manifest": manifest_uri,
        "error": None,
    }
    return subject, body


def failure_message(
    plan: RunPlan, error: str, duration_s: float, manifest_uri: str | None
) -> tuple[str, dict[str, Any]]:
    subject = f"wifi-export FAILED: brand {plan.brand_id} {plan.first_day}..{plan.last_day}"
    body = {
        **_common(plan),
        "status": "failed",
        "partitions": [],
        "totals": {"rows": 0, "objects": 0, "bytes": 0, "partitions": 0},
        "durationSeconds": round(duration_s, 3),
        "manifest": manifest_uri,
        "error": error,
        "note": "nothing was committed: the table still holds what it held before this run",
    }
    return subject, body


def attributes(plan: RunPlan, status: str) -> dict[str, str]:
    return {"status": status, "brandId": str(plan.brand_id)}


def _common(plan: RunPlan) -> dict[str, Any]:
    return {
        "runId": plan.run_id,
        "brandId": plan.brand_id,
        "startDate": plan.first_day.isoformat(),
        "endDate": plan.last_day.isoformat(),
        "timeBasis": plan.basis,
        "trigger": plan.trigger,
        "startedAt": plan.started_at,
    }
