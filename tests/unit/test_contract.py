"""The exporter's declarations of the table against docs/contracts.md ("S3 layout",
"Row schema") written out by hand.

`exporter/schema.py` drives the writer and (through tests/template) the Glue
table; `local/contract.py` is what the tests expect. They are kept apart on
purpose; this is the one place that compares them.
"""

from __future__ import annotations

import pytest

from exporter import schema
from local.contract import COLUMNS, METRIC_COLUMN, PARTITION_KEYS, DataKey, parse_data_key


def test_metric_columns_are_the_designs() -> None:
    assert dict(schema.METRIC_COLUMNS) == METRIC_COLUMN
    assert [column for _, column in schema.METRIC_COLUMNS] == list(METRIC_COLUMN.values())


def test_columns_and_partition_keys_are_the_designs() -> None:
    assert schema.COLUMNS == COLUMNS
    assert schema.PARTITION_KEYS == PARTITION_KEYS


RUN = "20230608T010203456Z-b1234-0123abcd"


def test_data_key_layout() -> None:
    key = DataKey("wifi/metrics", 1234, "2023-06-08", RUN, 2, 17).key
    assert key == f"wifi/metrics/brand_id=1234/dt=2023-06-08/{RUN}-w2-s17.json.gz"
    assert parse_data_key(key) == ("wifi/metrics", 1234, "2023-06-08", RUN, 2, 17)


@pytest.mark.parametrize(
    "wrong",
    [
        f"wifi/metrics/brand_id=1234/dt=2023-06-08/{RUN}-w2-s17.json",
        f"wifi/metrics/brand_id=01234/dt=2023-06-08/{RUN}-w2-s17.json.gz",
        f"wifi/metrics/dt=2023-06-08/brand_id=1234/{RUN}-w2-s17.json.gz",
        f"wifi/metrics/brand_id=1234/dt=2023-6-8/{RUN}-w2-s17.json.gz",
        f"wifi/metrics/brand_id=1234/dt=2023-06-08/{RUN}-w02-s17.json.gz",
        f"wifi/metrics/brand_id=1234/dt=2023-06-08/{RUN}-s17.json.gz",
    ],
)
def test_keys_off_the_layout_are_refused(wrong: str) -> None:
    with pytest.raises(AssertionError):
        parse_data_key(wrong)
