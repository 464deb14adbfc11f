"""What the ledger's moves answer (run.ledger): small frozen views of a run's state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from exporter import json_codec
from exporter.redaction import redact_value
from exporter.run.counters import Counters
from exporter.run.records import RunPlan, StepRecord

CancelOutcome = Literal["requested", "already-requested", "refused"]


def iso(moment: datetime) -> str:
    """UTC to the millisecond with a `Z`, the form of every timestamp the exporter writes."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class StepOpening:
    """What a step must know before it walks: the run's end, and its own record."""

    failed: bool
    cancel: dict[str, Any] | None
    record: StepRecord | None


@dataclass(frozen=True, slots=True)
class Ending:
    """What a finisher must know before it takes the lease."""

    notified: bool
    failure: str | None  # the recorded error, as status and notification show it
    cancel: dict[str, Any] | None
    windows_done: int


@dataclass(frozen=True, slots=True)
class CancelAnswer:
    outcome: CancelOutcome
    slot: dict[str, Any]  # the slot as it is now (the request, or the finisher's refusal)


@dataclass(frozen=True, slots=True)
class RunDocuments:
    plan: dict[str, Any] | None
    status: dict[str, Any] | None
    history: dict[str, Any] | None
    cancel: dict[str, Any] | None  # a cancel request (not the finisher's refusal)


def cancel_request_in(slot: dict[str, Any] | None) -> dict[str, Any] | None:
    """The cancel slot holds a request (`"cancel": true`) or the finisher's refusal."""
    return slot if slot is not None and slot.get("cancel") is True else None


def status_document(plan: RunPlan, state: str, done: int, now: str, extra: dict[str, Any]) -> bytes:
    """The run's status object (docs/contracts.md, "Status"), redacted."""
    status = {
        **plan.summary(),
        "trigger": plan.trigger,
        "startedAt": plan.started_at,
        "state": state,
        "windowsTotal": len(plan.windows),
        "windowsDone": done,
        "updatedAt": now,
        **extra,
    }
    return json_codec.dumps_pretty(redact_value(status))


def cancel_request_doc(now: str, requested_by: str) -> dict[str, Any]:
    """A person's cancel request (`wifi-export cancel`)."""
    return {
        "cancel": True,
        "requestedAt": now,
        "requestedBy": requested_by,
        "reason": "wifi-export cancel",
    }


def closed_slot_doc(now: str, *, failed: bool) -> bytes:
    """The finisher closing the cancel slot: from now on a cancel is refused."""
    reason = "the run's failure is being reported" if failed else "commit has begun"
    return json_codec.dumps({"cancel": False, "reason": reason, "at": now})


def all_refused_error(ids: list[int | str]) -> str:
    named = ", ".join(map(str, ids[:20])) + (" ..." if len(ids) > 20 else "")
    return f"API: every requested id was refused (401): {named}; nothing to export"


def summed_progress(docs: list[dict[str, Any]]) -> tuple[Counters, list[Any]]:
    """A run's counts and refused ids over its windows' progress documents."""
    counters = Counters.total(Counters.from_progress(doc) for doc in docs)
    refused = {i for doc in docs for i in doc.get("refused", ())}
    return counters, sorted(refused, key=str)


def windows_done_if_running(raw: bytes) -> int | None:
    """A status object's `windowsDone` while it is running; None once it has ended."""
    before = json_codec.loads(raw)
    if not isinstance(before, dict) or before.get("state", "running") != "running":
        return None
    counted = before.get("windowsDone")
    return counted if isinstance(counted, int) else 0
