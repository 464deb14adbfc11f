"""Parsing of the events a run can start from (DESIGN §1) into typed run requests.

Every rejection names the field and the problem, and happens before anything
is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from exporter.config import Settings, TimeBasis
from exporter.errors import InvalidEvent
from exporter.planning import last_complete_days

EventKind = Literal["scheduled", "on-demand", "sqs"]

_ON_DEMAND_FIELDS = frozenset({"brandId", "brandIds", "startDate", "endDate", "timeBasis"})
_MAX_BRAND_ID = 2**63 - 1
_EARLIEST_YEAR = 2000
# A date, or a datetime with optional fraction and an optional `Z`. Offsets such
# as +02:00 are refused: the API only knows UTC (`Z`) and local (no suffix).
_DAY_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?(Z)?)?$")


@dataclass(frozen=True, slots=True)
class RunRequest:
    trigger: Literal["scheduled", "on-demand"]
    brand_ids: tuple[int, ...]
    first_day: date
    last_day: date
    basis: TimeBasis
    started_at: datetime
    # Stable across Lambda's own retries of one invocation, so a retried start
    # reuses its run ids instead of starting duplicate runs.
    request_key: str


def classify(event: Any) -> EventKind:
    if not isinstance(event, dict):
        raise InvalidEvent(f"event: expected a JSON object, got {type(event).__name__}")
    records = event.get("Records")
    if isinstance(records, list):
        if records and all(
            isinstance(r, dict) and r.get("eventSource") == "aws:sqs" for r in records
        ):
            return "sqs"
        raise InvalidEvent("Records: only SQS records (eventSource aws:sqs) are accepted")
    if event.get("detail-type") == "Scheduled Event" or event.get("source") == "aws.scheduler":
        return "scheduled"
    return "on-demand"


def _brand(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidEvent(f"{field}: expected a positive integer brand id, got {value!r}")
    if not 0 < value <= _MAX_BRAND_ID:
        raise InvalidEvent(f"{field}: expected a positive integer brand id, got {value!r}")
    return value


def _brands(event: dict[str, Any]) -> tuple[int, ...]:
    if "brandId" in event and "brandIds" in event:
        raise InvalidEvent("brandId/brandIds: give one of them, not both")
    if "brandId" in event:
        return (_brand(event["brandId"], "brandId"),)
    if "brandIds" in event:
        raw = event["brandIds"]
        if not isinstance(raw, list) or not raw:
            raise InvalidEvent("brandIds: expected a non-empty list of positive integers")
        brands = [_brand(v, f"brandIds[{i}]") for i, v in enumerate(raw)]
        if len(set(brands)) != len(brands):
            raise InvalidEvent("brandIds: contains duplicates")
        return tuple(brands)
    raise InvalidEvent("brandId: required (or brandIds: a list of brand ids)")


def _day(event: dict[str, Any], field: str) -> tuple[date, TimeBasis | None]:
    raw = event.get(field)
    if raw is None:
        raise InvalidEvent(f"{field}: required, an ISO 8601 date like 2023-06-08")
    if not isinstance(raw, str):
        raise InvalidEvent(f"{field}: expected an ISO 8601 date string, got {raw!r}")
    match = _DAY_RE.match(raw)
    if not match:
        raise InvalidEvent(
            f"{field}: {raw!r} is not an ISO 8601 date (2023-06-08) or datetime "
            "(2023-06-08T00:00:00Z for UTC, no suffix for local time)"
        )
    try:
        day = date.fromisoformat(match.group(1))
        if match.group(2) is not None:
            datetime.fromisoformat(raw.removesuffix("Z"))
    except ValueError as exc:
        raise InvalidEvent(f"{field}: {raw!r} is not a valid date ({exc})") from None
    basis: TimeBasis | None = None
    if match.group(2) is not None:
        basis = "utc" if match.group(5) else "local"
    return day, basis


def parse_on_demand(
    event: dict[str, Any], settings: Settings, now: datetime, request_key: str
) -> RunRequest:
    unknown = sorted(set(event) - _ON_DEMAND_FIELDS)
    if unknown:
        raise InvalidEvent(
            f"{', '.join(unknown)}: unknown field(s); expected brandId or brandIds, "
            "startDate, endDate and optionally timeBasis"
        )
    brands = _brands(event)
    first, start_basis = _day(event, "startDate")
    last, end_basis = _day(event, "endDate")
    if start_basis and end_basis and start_basis != end_basis:
        raise InvalidEvent(
            "startDate/endDate: mixed time bases; both need a final Z (UTC) or neither (local)"
        )
    basis: TimeBasis | None = start_basis or end_basis
    explicit = event.get("timeBasis")
    if explicit is not None:
        if explicit not in ("utc", "local"):
            raise InvalidEvent(f"timeBasis: expected 'utc' or 'local', got {explicit!r}")
        if basis is not None and basis != explicit:
            raise InvalidEvent(f"timeBasis: {explicit!r} contradicts the dates' {basis!r} form")
        basis = explicit
    if basis is None:
        # Plain dates carry no basis of their own: the deployment's default applies.
        basis = settings.time_basis
    if last < first:
        raise InvalidEvent(f"endDate: {last} is before startDate {first}")
    today = now.astimezone(UTC).date()
    for field, day in (("startDate", first), ("endDate", last)):
        if day.year < _EARLIEST_YEAR or day > today + timedelta(days=1):
            raise InvalidEvent(
                f"{field}: {day} is outside the exportable range {_EARLIEST_YEAR}-01-01..{today}"
            )
    days = (last - first).days + 1
    if days > settings.max_range_days:
        raise InvalidEvent(
            f"endDate: the range has {days} days, more than the maximum of "
            f"{settings.max_range_days} (MAX_RANGE_DAYS); split it into several runs"
        )
    return RunRequest("on-demand", brands, first, last, basis, now, request_key)


def parse_scheduled(
    event: dict[str, Any], settings: Settings, now: datetime, request_key: str
) -> RunRequest:
    # The event's own time makes a retried delivery plan the same days.
    when = now
    raw_time = event.get("time")
    if isinstance(raw_time, str):
        try:
            when = datetime.fromisoformat(raw_time.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidEvent(f"time: {raw_time!r} is not an ISO 8601 timestamp") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
    key = str(event.get("id") or request_key)
    first, last = last_complete_days(when, settings.lookback_days, settings.time_basis)
    return RunRequest("scheduled", settings.brand_ids, first, last, settings.time_basis, when, key)
