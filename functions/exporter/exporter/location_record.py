"""One location record of an API answer, validated: its identity, its metric series.

What the API may send and what fails the run is in docs/decisions.md ("Values
Athena can read", "Rows and files"): ids and metric values are natural numbers
that fit Athena's bigint, a known metric is a map of time keys to them, an
unknown field that is such a map is an `extra` metric, anything else unknown is
counted and left out. exporter/rows.py shapes what passes into lines.
"""

from __future__ import annotations

import re
from itertools import chain
from typing import Annotated, Any, Final

import msgspec

from exporter.errors import MalformedResponse
from exporter.schema import METRIC_COLUMNS

# A location's identity columns: (location id, reference number, zone id).
Identity = tuple[int, str | None, str | None]
# A metric's API name and its series: time key -> value.
Metric = tuple[str, dict[str, int]]

# 2023-06-08T08:00:00Z, optional fraction, then Z / an offset / nothing.
# ASCII digits only and matched in full: `\d` alone takes any script's digits
# (and `int()` reads them), `$` a trailing newline.
TIME_KEY_RE: Final = re.compile(
    r"(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(?:\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})?", re.ASCII
)
# Athena's bigint: ids and metric values beyond it fail the run, naming the field.
MAX_BIGINT: Final = 2**63 - 1
# Unknown field names are reported (manifest, notification), cut to this length.
MAX_FIELD_NAME: Final = 64
_IDENTITY_FIELDS: Final = frozenset({"locationId", "referenceNumber", "zoneId"})
# A known metric's API name -> its column's place in the table.
_ORDER: Final = {api: n for n, (api, _) in enumerate(METRIC_COLUMNS)}
_INT: Final = frozenset({int})
_NATURALS: Final = list[Annotated[int, msgspec.Meta(ge=0, le=MAX_BIGINT)]]


def check(record: Any) -> tuple[Identity, list[Metric], list[Metric], list[str]]:
    """Validate one location record: (its identity columns, its known non-empty
    metric series in the table's column order, its unknown metric series (the
    `extra` column), the names of its unknown non-metric fields)."""
    if not isinstance(record, dict):
        raise MalformedResponse("a data item is not an object")
    location = record.get("locationId")
    if type(location) is not int or not 0 < location <= MAX_BIGINT:
        raise MalformedResponse(f"locationId {location!r} is not a positive bigint")
    known: list[tuple[int, str, dict[str, int]]] = []
    extras: list[Metric] = []
    unknown: list[str] = []
    for metric, series in record.items():
        if metric in _IDENTITY_FIELDS:
            continue
        order = _ORDER.get(metric)
        if order is None and not _is_metric_map(series):
            # Not ours and not a metric: harmless, counted, not kept (no column for it).
            unknown.append(metric[:MAX_FIELD_NAME])
            continue
        if type(series) is not dict:
            raise MalformedResponse(f"metric {metric!r} of location {location} is not a map")
        if not series:
            continue
        if order is None:  # its values were checked above
            extras.append((metric, series))
        else:
            known.append((order, metric, series))
    if known and not _all_naturals([series for _, _, series in known]):
        for metric, series in record.items():  # the first one, in the record's order
            if metric in _ORDER and type(series) is dict and not _naturals(series):
                _refuse_values(metric, location, series)
    known.sort()
    return (
        _identity(record, location),
        [(name, series) for _, name, series in known],
        extras,
        unknown,
    )


def _identity(record: dict[str, Any], location: int) -> Identity:
    """A location's identity columns: (location id, reference number, zone id)."""
    texts: list[str | None] = []
    for api_field in ("referenceNumber", "zoneId"):
        value = record.get(api_field)
        if api_field == "referenceNumber" and type(value) is int:
            value = str(value)  # "your internal IDs": some are numbers; the column is text
        if value is not None and not isinstance(value, str):
            raise MalformedResponse(f"{api_field} of location {location} is not a string")
        texts.append(value)
    return location, texts[0], texts[1]


def _all_naturals(series: list[dict[str, Any]]) -> bool:
    """Whether every value of every series is a natural number that fits a bigint:
    one pass in C over them all (bool is not int here either)."""
    try:
        msgspec.convert(list(chain.from_iterable(map(dict.values, series))), _NATURALS)
    except msgspec.ValidationError:
        return False
    return True


def _naturals(series: dict[Any, Any]) -> bool:
    """Whether every value is a natural number that fits a bigint.

    Checked a whole series at a time, in C: types first (bool is not int here).
    Natural numbers whose sum fits a bigint each fit one: `sum` of small ints is
    a third of `max`'s CPU, which is asked only when the sum is larger.
    """
    values = series.values()
    return _INT.issuperset(map(type, values)) and (
        not series
        or (min(values) >= 0 and (sum(values) <= MAX_BIGINT or max(values) <= MAX_BIGINT))
    )


def _refuse_values(metric: str, location: int, series: dict[Any, Any]) -> None:
    key, value = next(
        (k, v) for k, v in series.items() if type(v) is not int or not 0 <= v <= MAX_BIGINT
    )
    raise MalformedResponse(
        f"metric {metric!r} of location {location} at {str(key)[:40]!r} "
        f"is {value!r}, not a natural number"
    )


def _is_metric_map(value: Any) -> bool:
    """An unknown field is an `extra` metric if it maps time keys to natural numbers."""
    return type(value) is dict and _naturals(value) and all(map(TIME_KEY_RE.fullmatch, value))
