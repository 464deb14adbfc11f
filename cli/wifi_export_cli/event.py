"""The on-demand event `run` sends, checked flag by flag before any deployment is looked for.

The checks are the exporter's own (`exporter.events.parse_on_demand`), run here
with limits that only the deployment knows lifted: a flag the function would
refuse is refused locally (exit 2) with the flag's name, and nothing is invoked.
What the deployment still refuses (its own MAX_RANGE_DAYS, fields it does not
know) comes back typed: `EventRefused`, or `DeploymentTooOld` for unknown fields.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from exporter.config import Settings
from exporter.errors import InvalidEvent
from exporter.events import parse_on_demand

# Event field -> the `run` flag that sets it (docs/contracts.md, "Events").
FLAGS: Final = {
    "brandId": "--brand",
    "brandIds": "--brand",
    "startDate": "--from",
    "endDate": "--to",
    "timeBasis": "--local-time",
    "locations": "--locations",
    "referenceNumbers": "--reference-numbers",
    "zoneId": "--zone",
    "zeroFill": "--zero-fill",
    "skipUnauthorized": "--skip-unauthorized",
}
# Only the deployment's own bounds apply to these; locally they are lifted.
_NO_LIMITS: Final = Settings(
    secret_id="-",
    bucket_name="-",
    topic_arn="-",
    queue_url="-",
    max_range_days=10**6,
    max_brands_per_event=10**6,
    max_windows_per_event=10**12,
)
# "<field>[, <field>|/<field>][<n>]: <problem>", the shape of every InvalidEvent message.
_PREFIX: Final = re.compile(r"^(?P<fields>[A-Za-z]+(?:\[\d+\])?(?:(?:, |/)[A-Za-z]+)*): ")
_CAMEL: Final = re.compile(r"\b(" + "|".join(k for k in FLAGS if k != "locations") + r")\b")
_ITEM: Final = re.compile(r"\[(\d+)\]")
_UNKNOWN: Final = "unknown field(s)"


class FlagError(Exception):
    """A flag the exporter would refuse: caught before the deployment is looked for."""

    def __init__(self, flags: tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.flags = flags
        self.message = message


@dataclass
class EventRefused(Exception):
    """The deployment answered `InvalidEvent` about fields the flags set."""

    flags: tuple[str, ...]
    message: str


class DeploymentTooOld(EventRefused):
    """The deployment does not know some fields the flags set: it predates them."""


def on_demand_event(
    brands: tuple[int, ...],
    start: str,
    end: str,
    *,
    local_time: bool = False,
    locations: list[int] | None = None,
    reference_numbers: list[str] | None = None,
    zone: str | None = None,
    zero_fill: bool = False,
    skip_unauthorized: bool = False,
) -> dict[str, Any]:
    """The on-demand event (docs/contracts.md, "Events" and "Selections")."""
    event: dict[str, Any] = (
        {"brandId": brands[0]} if len(brands) == 1 else {"brandIds": list(brands)}
    )
    event.update({"startDate": start, "endDate": end})
    if local_time:
        event["timeBasis"] = "local"
    if locations is not None:
        event["locations"] = locations
    if reference_numbers is not None:
        event["referenceNumbers"] = reference_numbers
    if zone is not None:
        event["zoneId"] = zone
    if zero_fill:
        event["zeroFill"] = True
    if skip_unauthorized:
        event["skipUnauthorized"] = True
    return event


def check_flags(event: dict[str, Any], now: datetime) -> None:
    """Raise `FlagError` naming the flag if the exporter would refuse this event."""
    try:
        parse_on_demand(event, _NO_LIMITS, now, "wifi-export-cli")
    except InvalidEvent as exc:
        flags, message = in_flags(str(exc))
        raise FlagError(flags, message) from None


def refusal(answer: dict[str, Any]) -> EventRefused:
    """The typed form of the function's `{"error": "InvalidEvent", "message": ...}` answer."""
    flags, message = in_flags(str(answer.get("message", "")))
    if message.removeprefix(_joined(flags) + ": ").startswith(_UNKNOWN):
        return DeploymentTooOld(flags, message)
    return EventRefused(flags, message)


def in_flags(message: str) -> tuple[tuple[str, ...], str]:
    """("--from",), "--from: ..." for "startDate: ...": the fields a message names, as flags."""
    match = _PREFIX.match(message)
    if match is None:
        return (), _CAMEL.sub(lambda m: FLAGS[m.group(1)], message)
    names = re.split(r", |/", _ITEM.sub("", match.group("fields")))
    flags = tuple(dict.fromkeys(FLAGS.get(name, name) for name in names))
    item = _ITEM.search(match.group("fields"))
    where = f" (item {int(item.group(1)) + 1})" if item else ""
    rest = _CAMEL.sub(lambda m: FLAGS[m.group(1)], message[match.end() :])
    # "locations" is also a plain word: only where the exporter lists it as a field.
    rest = re.sub(r"\(locations\b", "(--locations", rest).replace("use --brand", "give one --brand")
    return flags, f"{_joined(flags)}{where}: {rest}"


def _joined(flags: tuple[str, ...]) -> str:
    return "/".join(flags)
