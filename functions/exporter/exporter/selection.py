"""Selections: chosen locations, reference numbers or a zone, exported through v1, v2 or v4.

A selection is part of an on-demand event (docs/contracts.md, "Events"). It is
validated here, split into API batches of at most `BATCH_SIZE` ids, and the
batches into parts of at most `BATCHES_PER_PART`: each part of each window of
days is one chain of requests, walked like a v3 cursor chain (the cursor is the
next batch's number). Pure functions only.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar

from exporter.errors import InvalidEvent
from exporter.variants import DEFAULT_SELECTION, OPTIONS, SELECTION_VARIANTS, Variant
from exporter.variants import selection_variant as variant_named

# The API's limit: "A maximum of 50 locations can be requested at once."
BATCH_SIZE: Final = 50
# Batches walked one after the other in one chain: 1,000 ids. Larger selections fan
# out in parts, like windows; smaller ones cost what v3 costs (docs/decisions.md).
BATCHES_PER_PART: Final = 20
# The most ids one event may name: 200 batches (documented in contracts.md).
MAX_SELECTION_IDS: Final = 10_000
MAX_REFERENCE_LENGTH: Final = 128
SELECTOR_FIELDS: Final = ("locations", "referenceNumbers", "zoneId")
OPTION_FIELDS: Final = OPTIONS
_MAX_LOCATION_ID: Final = 2**63 - 1
_REFERENCE_RE: Final = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")

Kind = Literal["locations", "referenceNumbers", "zoneId"]


@dataclass(frozen=True, slots=True)
class Selection:
    """What a selection run exports: `ids` of one `kind`, through one API `variant`
    (its name, as the plan stores it; `api` is the variant itself)."""

    kind: Kind
    ids: tuple[int | str, ...]
    variant: str

    @property
    def api(self) -> Variant:
        return variant_named(self.variant)

    @property
    def batches(self) -> int:
        return -(-len(self.ids) // BATCH_SIZE)

    @property
    def parts(self) -> int:
        return -(-self.batches // BATCHES_PER_PART)

    def batch(self, index: int) -> tuple[int | str, ...]:
        return self.ids[index * BATCH_SIZE : (index + 1) * BATCH_SIZE]

    def part_batches(self, part: int) -> range:
        """The batch numbers of part `part`, in the order its chain walks them."""
        return range(part * BATCHES_PER_PART, min((part + 1) * BATCHES_PER_PART, self.batches))

    def part_ids(self, part: int) -> tuple[int | str, ...]:
        batches = self.part_batches(part)
        return self.ids[batches.start * BATCH_SIZE : batches.stop * BATCH_SIZE]

    def request_body(self, brand_id: int, index: int) -> dict[str, Any]:
        """The selector part of batch `index`'s request (dates are added by the caller)."""
        ids = list(self.batch(index))
        if self.kind == "locations":
            return {"locations": ids}
        if self.kind == "referenceNumbers":
            return {"brandId": brand_id, "referenceNumbers": ids}
        return {"zoneId": ids[0]}

    @property
    def zone_id(self) -> str | None:
        return str(self.ids[0]) if self.kind == "zoneId" else None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "ids": list(self.ids), "variant": self.variant}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Selection:
        kind, variant = raw["kind"], raw["variant"]
        if kind not in SELECTOR_FIELDS:
            raise ValueError(f"not a selection: {kind!r}")
        return cls(kind, tuple(raw["ids"]), variant_named(variant).name)


def parse_selection(event: dict[str, Any]) -> Selection | None:
    """The event's selection, or None for a whole-brand (v3) export."""
    given = [name for name in SELECTOR_FIELDS if name in event]
    options = [name for name in OPTION_FIELDS if name in event]
    for name in options:
        if not isinstance(event[name], bool):
            raise InvalidEvent(f"{name}: expected true or false, got {event[name]!r}")
    if not given:
        if options:
            raise InvalidEvent(
                f"{options[0]}: only applies to a selection (locations, referenceNumbers or zoneId)"
            )
        return None
    if len(given) > 1:
        raise InvalidEvent(f"{'/'.join(given)}: give one selector, not several")
    if "brandIds" in event:
        raise InvalidEvent(f"brandIds: a selection ({given[0]}) exports one brand; use brandId")
    chosen = [v for v in SELECTION_VARIANTS if v.option and event.get(v.option) is True]
    if len(chosen) > 1:
        raise InvalidEvent(
            f"{'/'.join(str(v.option) for v in chosen)}: choose one; each chooses another "
            f"API variant ({', '.join(v.name for v in chosen)})"
        )
    variant = (chosen[0] if chosen else DEFAULT_SELECTION).name
    kind: Kind = given[0]
    raw = event[kind]
    if kind == "zoneId":
        return Selection(kind, (_zone(raw),), variant)
    ids = _locations(raw) if kind == "locations" else _references(raw)
    return Selection(kind, ids, variant)


def _id_list(raw: Any, field: str, what: str) -> list[Any]:
    if not isinstance(raw, list) or not raw:
        raise InvalidEvent(f"{field}: expected a non-empty list of {what}")
    if len(raw) > MAX_SELECTION_IDS:
        raise InvalidEvent(
            f"{field}: {len(raw)} ids, more than the maximum of {MAX_SELECTION_IDS:,} "
            "per event; split the selection into several runs"
        )
    return raw


def _locations(raw: Any) -> tuple[int, ...]:
    items = _id_list(raw, "locations", "positive integer location ids")
    for n, value in enumerate(items):
        if type(value) is not int or not 0 < value <= _MAX_LOCATION_ID:
            raise InvalidEvent(
                f"locations[{n}]: expected a positive integer location id, got {value!r}"
            )
    return _distinct(items, "locations")


def _references(raw: Any) -> tuple[str, ...]:
    items = _id_list(raw, "referenceNumbers", "reference number strings")
    for n, value in enumerate(items):
        if (
            not isinstance(value, str)
            or len(value) > MAX_REFERENCE_LENGTH
            or not _REFERENCE_RE.fullmatch(value)
        ):
            raise InvalidEvent(
                f"referenceNumbers[{n}]: expected printable text of 1 to "
                f"{MAX_REFERENCE_LENGTH} characters, got {str(value)[:40]!r}"
            )
    return _distinct(items, "referenceNumbers")


_Id = TypeVar("_Id", int, str)


def _distinct(items: list[_Id], field: str) -> tuple[_Id, ...]:
    seen: set[_Id] = set()
    for n, value in enumerate(items):
        if value in seen:
            raise InvalidEvent(f"{field}[{n}]: {value!r} is listed twice")
        seen.add(value)
    return tuple(items)


def _zone(raw: Any) -> str:
    try:
        if not isinstance(raw, str):
            raise ValueError
        return str(uuid.UUID(raw))  # canonical lower-case form
    except ValueError:
        raise InvalidEvent(
            f"zoneId: expected a zone UUID like 11111111-1111-1111-1111-111111111111, "
            f"got {str(raw)[:60]!r}"
        ) from None
