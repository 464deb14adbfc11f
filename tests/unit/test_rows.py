from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.errors import MalformedResponse
from exporter.rows import RowShaper
from exporter.schema import COLUMNS, METRIC_COLUMNS

DAYS = [date(2023, 6, 8), date(2023, 6, 9)]
COLUMN_OF = dict(METRIC_COLUMNS)


def shape(
    data: Any, basis: str = "utc", days: list[date] = DAYS
) -> dict[str, list[dict[str, Any]]]:
    page = RowShaper("20230608T000000000Z-b1-0123abcd", basis, days).shape(data)  # type: ignore[arg-type]
    out = {dt: [json.loads(line) for line in lines] for dt, lines in page.lines.items()}
    assert {dt: len(rows) for dt, rows in out.items()} == page.rows
    assert all(line.endswith("\n") for lines in page.lines.values() for line in lines)
    return out


def test_one_row_per_location_and_bucket() -> None:
    out = shape(
        [
            {
                "locationId": 7,
                "referenceNumber": "US0658",
                "visits": {"2023-06-08T08:00:00Z": 3, "2023-06-08T09:00:00Z": 6},
                "dwellTime": {"2023-06-08T09:00:00Z": 111111},
                "footfallScore": {"2023-06-08T09:00:00Z": 42},
            }
        ]
    )
    assert out == {
        "2023-06-08": [
            {
                "location_id": 7,
                "reference_number": "US0658",
                "ts": "2023-06-08 08:00:00",
                "time_basis": "utc",
                "visits": 3,
                "run_id": "20230608T000000000Z-b1-0123abcd",
            },
            {
                "location_id": 7,
                "reference_number": "US0658",
                "ts": "2023-06-08 09:00:00",
                "time_basis": "utc",
                "visits": 6,
                "dwell_time_ms": 111111,
                "extra": {"footfallScore": 42},
                "run_id": "20230608T000000000Z-b1-0123abcd",
            },
        ]
    }


def test_columns_come_in_table_order() -> None:
    record = {"locationId": 1, "zoneId": "z", "referenceNumber": "r"}
    record.update(
        {api: {"2023-06-09T00:00:00Z": n + 1} for n, (api, _) in enumerate(METRIC_COLUMNS)}
    )
    record["zzz"] = {"2023-06-09T00:00:00Z": 1}
    (row,) = shape([record])["2023-06-09"]
    assert list(row) == [name for name, _ in COLUMNS]


def test_rows_outside_the_run_days_are_dropped_not_moved() -> None:
    page = RowShaper("20230608T000000000Z-b1-0123abcd", "utc", DAYS).shape(
        [{"locationId": 1, "visits": {"2023-06-07T23:00:00Z": 1, "2023-06-10T00:00:00Z": 2}}]
    )
    assert page.lines == {}
    assert page.dropped_rows == 2


def test_local_keys_keep_their_wall_time() -> None:
    out = shape([{"locationId": 1, "visits": {"2023-06-09T23:00:00": 5}}], basis="local")
    assert out["2023-06-09"][0]["ts"] == "2023-06-09 23:00:00"
    assert out["2023-06-09"][0]["time_basis"] == "local"


def test_a_location_without_values_gives_no_rows() -> None:
    assert shape([{"locationId": 1}]) == {}


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"locationId": 1}, "list"),
        (["x"], "object"),
        ([{"visits": {}}], "locationId"),
        ([{"locationId": "1"}], "locationId"),
        ([{"locationId": True}], "locationId"),
        ([{"locationId": -3}], "locationId"),
        ([{"locationId": 1, "referenceNumber": 5}], "referenceNumber"),
        ([{"locationId": 1, "visits": [1, 2]}], "not a map"),
        ([{"locationId": 1, "visits": {"2023-06-08T00:00:00Z": -1}}], "natural"),
        ([{"locationId": 1, "visits": {"2023-06-08T00:00:00Z": 1.5}}], "natural"),
        ([{"locationId": 1, "visits": {"2023-06-08T00:00:00Z": "3"}}], "natural"),
        ([{"locationId": 1, "visits": {"2023-06-08T00:00:00Z": True}}], "natural"),
        ([{"locationId": 1, "visits": {"yesterday": 1}}], "ISO 8601"),
        ([{"locationId": 1, "visits": {"2023-13-08T00:00:00Z": 1}}], "valid date"),
        ([{"locationId": 1, "visits": {"2023-06-08T25:00:00Z": 1}}], "valid time"),
        ([{"locationId": 1, "visits": {"2023-06-08T00:00:00": 1}}], "not UTC"),
    ],
)
def test_malformed_pages_are_refused(data: Any, problem: str) -> None:
    with pytest.raises(MalformedResponse, match=problem):
        RowShaper("20230608T000000000Z-b1-0123abcd", "utc", DAYS).shape(data)


def test_utc_key_in_a_local_request_is_refused() -> None:
    with pytest.raises(MalformedResponse, match="UTC in a local"):
        RowShaper("20230608T000000000Z-b1-0123abcd", "local", DAYS).shape(
            [{"locationId": 1, "visits": {"2023-06-08T00:00:00Z": 1}}]
        )


names = st.sampled_from([api for api, _ in METRIC_COLUMNS] + ["mystery", 'we"ird\\name'])
hours = st.integers(0, 47).map(lambda h: f"2023-06-{8 + h // 24:02d}T{h % 24:02d}:00:00Z")
series = st.dictionaries(hours, st.integers(0, 2**63 - 1), max_size=6)
records = st.lists(
    st.tuples(
        st.integers(1, 10**12),
        st.none() | st.text(max_size=8),
        st.dictionaries(names, series, max_size=5),
    ),
    max_size=5,
    unique_by=lambda r: r[0],
)


@given(records)
def test_every_value_lands_once_in_its_row(generated: list[Any]) -> None:
    data = []
    truth: dict[tuple[int, str], dict[str, int]] = {}
    for location, reference, metrics in generated:
        record: dict[str, Any] = {"locationId": location, **metrics}
        if reference is not None:
            record["referenceNumber"] = reference
        data.append(record)
        for metric, values in metrics.items():
            for key, value in values.items():
                truth.setdefault((location, key[:10] + " " + key[11:19]), {})[metric] = value
    out = shape(data)
    seen: dict[tuple[int, str], dict[str, int]] = {}
    for dt, rows in out.items():
        for row in rows:
            assert row["ts"].startswith(dt)
            values = {api: row[col] for api, col in METRIC_COLUMNS if col in row}
            values.update(row.get("extra", {}))
            key = (row["location_id"], row["ts"])
            assert key not in seen
            seen[key] = values
    assert seen == truth
