"""What a v3 walk returns, as rows: the expectations tests and benchmarks compare with."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import NamedTuple

from local.fake_analytiks.data import (
    Basis,
    all_metrics,
    grid_minutes,
    location_ids,
    location_series,
    parse_api_date,
    utc_minutes_for,
    wall_text,
)


class ExpectedRow(NamedTuple):
    location_id: int
    ts: str  # "YYYY-MM-DD HH:MM:SS" in the request basis (local wall time if local)
    values: dict[str, int]  # only the non-zero metrics (what v1-v3 expose)


def _as_wall(value: datetime | str, basis: Basis | None, name: str) -> tuple[datetime, Basis]:
    if isinstance(value, str):
        moment, parsed = parse_api_date(value)
        if basis is not None and basis != parsed:
            raise ValueError(f"{name} {value!r} is {parsed} but basis={basis!r}")
        return moment, parsed
    if value.tzinfo is not None:
        if basis == "local":
            raise ValueError(f"{name} is timezone-aware but basis='local'")
        return value.astimezone(UTC).replace(tzinfo=None), "utc"
    if basis is None:
        raise ValueError(f"{name} is a naive datetime: pass basis='utc' or 'local'")
    return value, basis


def expected_rows(  # noqa: PLR0917 - the documented call shape is positional
    brand_id: int,
    location_count: int,
    start: datetime | str,
    end: datetime | str,
    basis: Basis | None = None,
    bucket_minutes: int = 60,
    extra_metrics: Sequence[str] = (),
) -> Iterator[ExpectedRow]:
    """What a v3 walk of ``brand_id`` over [start, end] returns, as rows.

    ``start``/``end`` are API date strings (basis inferred from the ``Z``) or
    datetimes (aware = UTC; naive needs ``basis``). Yields one
    ``ExpectedRow(location_id, ts, values)`` per location and bucket with at
    least one non-zero metric, in location id then time order; ``values`` holds
    only the non-zero metrics (zero values are omitted by v1-v3). The
    reference number of every v3 record is :func:`reference_number`.
    """
    start_wall, start_basis = _as_wall(start, basis, "start")
    end_wall, end_basis = _as_wall(end, basis, "end")
    if start_basis != end_basis:
        raise ValueError("start and end must have the same basis")
    walls = grid_minutes(start_wall, end_wall, bucket_minutes)
    stamps = [wall_text(m).replace("T", " ") for m in walls]
    metrics = all_metrics(extra_metrics)
    for loc in location_ids(brand_id, location_count):
        series = location_series(loc, metrics, utc_minutes_for(loc, walls, start_basis))
        for i, ts in enumerate(stamps):
            values = {metric: s[i] for metric, s in zip(metrics, series, strict=True) if s[i]}
            if values:
                yield ExpectedRow(loc, ts, values)
