"""Parsing of the events a run can start from (docs/contracts.md, "Events") into typed run requests.

Every rejection names the field and the problem, and happens before anything
is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from exporter.config import Settings, TimeBasis
from exporter.errors import InvalidEvent
from exporter.planning import EARLIEST_DAY, last_complete_days
from exporter.selection import OPTION_FIELDS, SELECTOR_FIELDS, Selection, parse_selection

EventKind = Literal["scheduled", "on-demand", "sqs"]

_ON_DEMAND_FIELDS = frozenset(
    {"brandId", "brandIds", "startDate", "endDate", "timeBasis", *SELECTOR_FIELDS, *OPTION_FIELDS}
)
_MAX_BRAND_ID = 2**63 - 1
# A date, or a datetime with optional fraction and an optional `Z`. Offsets such
# as +02:00 are refused: the API only knows UTC (`Z`) and local (no suffix).
_DAY_RE = re.compile(
    r"(\d{4}-\d{2}-\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?(Z)?)?", re.ASCII
)

# Scheduled events (docs/contracts.md, "Scheduled events"). Only these sources
# schedule runs; anything else claiming to be scheduled is refused.
SCHEDULE_SOURCES: Final = ("aws.events", "aws.scheduler")
# The event's `time` (when its schedule fired) may choose the days of the run,
# within these bounds of the real clock: ahead by no more than clock skew; behind
# by no more than Lambda keeps an asynchronous event (6 hours, its maximum event
# age: a throttled or failed invocation is retried that long), plus the skew.
# Run ids are stamped with the real clock, never with the event's time.
SCHEDULED_TIME_AHEAD: Final = timedelta(minutes=5)
SCHEDULED_TIME_BEHIND: Final = timedelta(hours=6, minutes=5)
_MAX_EVENT_ID: Final = 256


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
    # Chosen locations / reference numbers / zone (v1, v2, v4); None: the whole brand (v3).
    selection: Selection | None = None


# The region in a queue URL's host: sqs.<region>.amazonaws.com[.cn] (also
# LocalStack's sqs.<region>.localhost.localstack.cloud) or the legacy
# <region>.queue.amazonaws.com.
_SQS_HOST_RE: Final = re.compile(
    r"(?:sqs\.([a-z]{2}(?:-[a-z]+)+-\d{1,2})|([a-z]{2}(?:-[a-z]+)+-\d{1,2})\.queue)\..+",
    re.ASCII,
)


def queue_arn(queue_url: str, region: str) -> str:
    """The ARN of the queue at `queue_url`: the only `eventSourceARN` whose records
    are checkpoints (docs/contracts.md, "Events"). An endpoint that is not AWS's
    own (moto server, LocalStack, ElasticMQ) names no region: `region` is used."""
    parts = urlsplit(queue_url)
    path = parts.path.strip("/").split("/")
    host = _SQS_HOST_RE.fullmatch(parts.hostname or "")
    if host is not None:
        region = host.group(1) or host.group(2)
    partitions = (("cn-", "aws-cn"), ("us-gov-", "aws-us-gov"))
    partition = next((p for prefix, p in partitions if region.startswith(prefix)), "aws")
    account, name = (path[-2], path[-1]) if len(path) >= 2 else ("", path[-1])
    return f"arn:{partition}:sqs:{region}:{account}:{name}"


def from_queue(source_arn: Any, expected_arn: str) -> bool:
    """Whether a record's `eventSourceARN` is the deployment's queue. Anyone allowed
    to invoke the function can send `Records`: their checkpoints are not ours."""
    return isinstance(source_arn, str) and source_arn == expected_arn


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
    # Whatever claims to be scheduled is parsed (and refused) as such.
    if event.get("detail-type") == "Scheduled Event" or event.get("source") in SCHEDULE_SOURCES:
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
    match = _DAY_RE.fullmatch(raw)
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
    # Ranges are whole days: a time of day would be silently widened to its day.
    # Midnight is the day itself (an endDate at midnight is that day, inclusive).
    clock = raw[11:].removesuffix("Z")
    if match.group(2) is not None and clock.strip("0:."):
        raise InvalidEvent(
            f"{field}: {raw!r} has a time of day other than midnight; ranges are whole "
            f"days: give the day ({match.group(1)}, or {match.group(1)}T00:00:00 with Z for UTC)"
        )
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
            "startDate, endDate and optionally timeBasis, one of locations / "
            "referenceNumbers / zoneId, zeroFill, skipUnauthorized"
        )
    _check_brand_count(event, settings)
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
        if day < EARLIEST_DAY or day > today + timedelta(days=1):
            raise InvalidEvent(
                f"{field}: {day} is outside the exportable range "
                f"{EARLIEST_DAY}..{today + timedelta(days=1)} (tomorrow, UTC: the "
                "latest day that has begun somewhere)"
            )
    days = (last - first).days + 1
    if days > settings.max_range_days:
        raise InvalidEvent(
            f"endDate: the range has {days} days, more than the maximum of "
            f"{settings.max_range_days} (MAX_RANGE_DAYS); split it into several runs"
        )
    selection = parse_selection(event)
    _check_fan_out(brands, days, selection, settings)
    return RunRequest("on-demand", brands, first, last, basis, now, request_key, selection)


def _check_brand_count(event: dict[str, Any], settings: Settings) -> None:
    """One run per brand: `brandIds` is bounded before its items are even looked at."""
    raw = event.get("brandIds")
    if isinstance(raw, list) and len(raw) > settings.max_brands_per_event:
        raise InvalidEvent(
            f"brandIds: {len(raw):,} brands, more than the maximum of "
            f"{settings.max_brands_per_event} per event (MAX_BRANDS_PER_EVENT); "
            "split them into several events"
        )


def _check_fan_out(
    brands: tuple[int, ...], days: int, selection: Selection | None, settings: Settings
) -> None:
    """Every window of a plan is an SQS message and a chain of up to MAX_HOPS invocations:
    one event may ask for at most MAX_WINDOWS_PER_EVENT of them over all its runs."""
    day_windows = -(-days // settings.window_days)
    parts = selection.parts if selection else 1
    windows = len(brands) * day_windows * parts
    if windows <= settings.max_windows_per_event:
        return
    field = "brandIds" if len(brands) > 1 else selection.kind if selection else "endDate"
    parts_text = f" x {parts} parts of the selection's ids" if selection else ""
    raise InvalidEvent(
        f"{field}: the event would fan out into {windows:,} windows ({len(brands)} brand(s) x "
        f"{day_windows} windows of up to {settings.window_days} days{parts_text}), more than "
        f"the maximum of {settings.max_windows_per_event:,} (MAX_WINDOWS_PER_EVENT); "
        "split it into several events"
    )


def parse_scheduled(
    event: dict[str, Any], settings: Settings, now: datetime, request_key: str
) -> RunRequest:
    """A scheduled event: the last LOOKBACK_DAYS complete days of BRAND_IDS.

    `now` is the real clock. The run ids take it (through the request's first
    sighting, so Lambda's retry of this event reuses them); the event's `time`,
    within bounds, only chooses the days, so a retry exports the same ones.
    """
    when = _scheduled_time(event, now)
    _check_schedule_source(event)
    raw_id = event.get("id")
    if raw_id is not None and (not isinstance(raw_id, str) or not 0 < len(raw_id) <= _MAX_EVENT_ID):
        raise InvalidEvent(
            f"id: expected the event's id, a string of 1 to {_MAX_EVENT_ID} characters"
        )
    key = raw_id or request_key
    first, last = last_complete_days(when, settings.lookback_days, settings.time_basis)
    return RunRequest("scheduled", settings.brand_ids, first, last, settings.time_basis, now, key)


def _scheduled_time(event: dict[str, Any], now: datetime) -> datetime:
    """The event's `time`, checked against the real clock; `now` when it has none."""
    raw = event.get("time")
    if raw is None:
        return now
    if not isinstance(raw, str):
        raise InvalidEvent(f"time: expected an ISO 8601 timestamp string, got {type(raw).__name__}")
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidEvent(f"time: {raw[:64]!r} is not an ISO 8601 timestamp") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    clock = now.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    if when > now + SCHEDULED_TIME_AHEAD:
        raise InvalidEvent(
            f"time: {raw!r} is ahead of the clock ({clock}) by more than "
            f"{_span(SCHEDULED_TIME_AHEAD)}: a schedule never fires early"
        )
    if when < now - SCHEDULED_TIME_BEHIND:
        raise InvalidEvent(
            f"time: {raw!r} is behind the clock ({clock}) by more than "
            f"{_span(SCHEDULED_TIME_BEHIND)}, longer than Lambda keeps an event: not a "
            "delivery of a schedule (export past days with an on-demand event)"
        )
    return when


def _check_schedule_source(event: dict[str, Any]) -> None:
    source, detail_type = event.get("source"), event.get("detail-type")
    if source not in SCHEDULE_SOURCES:
        shown = repr(source)[:64] if source is not None else "none"
        raise InvalidEvent(
            f"source: a scheduled event comes from aws.events (an EventBridge rule) or "
            f"aws.scheduler (EventBridge Scheduler), got {shown}"
        )
    if detail_type != "Scheduled Event" and (source == "aws.events" or detail_type is not None):
        shown = repr(detail_type)[:64] if detail_type is not None else "none"
        raise InvalidEvent(f"detail-type: expected 'Scheduled Event' from {source}, got {shown}")


def _span(span: timedelta) -> str:
    hours, minutes = divmod(int(span.total_seconds() // 60), 60)
    return " ".join([f"{hours} h"] * bool(hours) + [f"{minutes} min"] * bool(minutes))
