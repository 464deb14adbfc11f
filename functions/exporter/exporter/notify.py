"""The one notification a run sends (docs/contracts.md, "Notifications"): pure functions."""

from __future__ import annotations

from typing import Any, Final

from exporter import json_codec
from exporter.redaction import error_text, printable_value, redact_value
from exporter.run.records import RunPlan

# SNS takes at most 256 KiB (262,144 bytes) a message, message attributes
# included: the body stays below this, which leaves room for the attributes.
MAX_MESSAGE_BYTES: Final = 250_000
# Never dropped to make a message fit: which run, how it ended, and why.
_ESSENTIAL: Final = frozenset(
    {"runId", "brandId", "startDate", "endDate", "timeBasis", "trigger", "startedAt"}
    | {"status", "durationSeconds", "manifest", "error", "omitted"}
)


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
        # What the API sent beyond its document; absent from older manifests.
        "unknownFields": manifest.get("unknownFields", {}),
        "irregularLocalDays": manifest.get("irregularLocalDays"),
        "durationSeconds": manifest["durationSeconds"],
        "manifest": manifest_uri,
        "error": None,
        **_refused(manifest),
        **({"changes": manifest["changes"]} if "changes" in manifest else {}),
        # Files in the run's partitions no record of ours names: left alone.
        **({"foreignObjects": manifest["foreignObjects"]} if "foreignObjects" in manifest else {}),
    }
    return subject, body


def failure_message(plan: RunPlan, error: str, duration_s: float) -> tuple[str, dict[str, Any]]:
    subject = f"wifi-export FAILED: brand {plan.brand_id} {plan.first_day}..{plan.last_day}"
    body = {
        **_common(plan),
        "status": "failed",
        "partitions": [],
        "totals": {"rows": 0, "objects": 0, "bytes": 0, "partitions": 0},
        "durationSeconds": round(duration_s, 3),
        "manifest": None,  # a failed run commits nothing, so it has no manifest
        "error": error,
        "note": "nothing was committed: the table still holds what it held before this run",
    }
    return subject, body


def cancelled_message(
    plan: RunPlan, cancel: dict[str, Any], duration_s: float, error: str | None = None
) -> tuple[str, dict[str, Any]]:
    """A run stopped by `wifi-export cancel`; `error`: a failure it met on the way."""
    subject = f"wifi-export cancelled: brand {plan.brand_id} {plan.first_day}..{plan.last_day}"
    body = {
        **_common(plan),
        "status": "cancelled",
        "partitions": [],
        "totals": {"rows": 0, "objects": 0, "bytes": 0, "partitions": 0},
        "durationSeconds": round(duration_s, 3),
        "manifest": None,  # a cancelled run commits nothing
        "error": error,
        "cancel": {k: cancel[k] for k in ("requestedAt", "requestedBy", "reason") if k in cancel},
        "note": "cancelled: nothing was committed, the table still holds what it held before",
    }
    return subject, body


def _refused(manifest: dict[str, Any]) -> dict[str, Any]:
    """A selection's refused ids: all counted, the first 100 named (the manifest has all)."""
    if "refused" not in manifest:
        return {}
    ids = manifest["refused"]
    return {"refused": {"count": len(ids), "ids": ids[:100]}}


def attributes(plan: RunPlan, status: str) -> dict[str, str]:
    return {"status": status, "brandId": str(plan.brand_id)}


def _common(plan: RunPlan) -> dict[str, Any]:
    return {
        **plan.summary(),
        "trigger": plan.trigger,
        "startedAt": plan.started_at,
    }


def render(body: dict[str, Any], limit: int = MAX_MESSAGE_BYTES) -> str:
    """The body as the SNS message: redacted, its error bounded, at most `limit` bytes.

    A body that would not fit (a decade of partitions, long lists of refused ids
    or unknown fields) loses its largest fields first, named in `omitted`; the
    manifest and the status object keep them. A message SNS refused would leave
    the run without its notification.
    """
    # Every string plain text (an unknown field's name comes from the API): the
    # message is read on terminals and in mail.
    safe: dict[str, Any] = printable_value(redact_value(body))
    if isinstance(safe.get("error"), str):
        safe["error"] = error_text(safe["error"])
    message = json_codec.dumps(safe)
    while len(message) > limit:
        sizes = {k: len(json_codec.dumps(v)) for k, v in safe.items() if k not in _ESSENTIAL}
        if not sizes:
            break
        biggest = max(sizes, key=sizes.__getitem__)
        del safe[biggest]
        safe["omitted"] = [*safe.get("omitted", []), biggest]
        message = json_codec.dumps(safe)
    return message.decode()
