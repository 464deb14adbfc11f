"""The exporter's declarations of the table against docs/contracts.md ("S3 layout",
"Row schema") written out by hand.

`exporter/schema.py` drives the writer and (through tests/template) the Glue
table; `local/contract.py` is what the tests expect. They are kept apart on
purpose; this is the one place that compares them.
"""

from __future__ import annotations

import pytest

from exporter import schema
from exporter.run.keys import Layout
from local.contract import COLUMNS, METRIC_COLUMN, PARTITION_KEYS, DataKey, parse_data_key


def test_metric_columns_are_the_designs() -> None:
    assert dict(schema.METRIC_COLUMNS) == METRIC_COLUMN
    assert [column for _, column in schema.METRIC_COLUMNS] == list(METRIC_COLUMN.values())


def test_columns_and_partition_keys_are_the_designs() -> None:
    assert schema.COLUMNS == COLUMNS
    assert schema.PARTITION_KEYS == PARTITION_KEYS


RUN = "20230608T010203456Z-b1234-0123abcd"


def test_data_key_layout() -> None:
    key = DataKey("wifi/metrics", 1234, "local", "2023-06-08", RUN, 2, 17).key
    want = f"wifi/metrics/brand_id=1234/time_basis=local/dt=2023-06-08/{RUN}-w2-s17.json.gz"
    assert key == want
    assert parse_data_key(key) == ("wifi/metrics", 1234, "local", "2023-06-08", RUN, 2, 17)


@pytest.mark.parametrize("basis", ["utc", "local"])
def test_the_exporter_writes_the_layout(basis: str) -> None:
    keys = Layout("wifi/_exports", "wifi/metrics").run(RUN, 1234, basis)  # type: ignore[arg-type]
    got = parse_data_key(keys.data_object(2, 17, "2023-06-08"))
    assert got == ("wifi/metrics", 1234, basis, "2023-06-08", RUN, 2, 17)
    # The old layout's folder of the brand, which commits refuse to mix with.
    assert keys.old_layout == "wifi/metrics/brand_id=1234/dt="


def test_a_run_without_its_basis_has_no_partitions() -> None:
    keys = Layout("wifi/_exports", "wifi/metrics").run(RUN, 1234)
    with pytest.raises(ValueError, match="time basis"):
        keys.partition("2023-06-08")


@pytest.mark.parametrize(
    "wrong",
    [
        f"wifi/metrics/brand_id=1234/time_basis=utc/dt=2023-06-08/{RUN}-w2-s17.json",
        f"wifi/metrics/brand_id=01234/time_basis=utc/dt=2023-06-08/{RUN}-w2-s17.json.gz",
        f"wifi/metrics/time_basis=utc/brand_id=1234/dt=2023-06-08/{RUN}-w2-s17.json.gz",
        f"wifi/metrics/brand_id=1234/dt=2023-06-08/time_basis=utc/{RUN}-w2-s17.json.gz",
        f"wifi/metrics/brand_id=1234/dt=2023-06-08/{RUN}-w2-s17.json.gz",  # the old layout
        f"wifi/metrics/brand_id=1234/time_basis=UTC/dt=2023-06-08/{RUN}-w2-s17.json.gz",
        f"wifi/metrics/brand_id=1234/time_basis=utc/dt=2023-6-8/{RUN}-w2-s17.json.gz",
        f"wifi/metrics/brand_id=1234/time_basis=utc/dt=2023-06-08/{RUN}-w02-s17.json.gz",
        f"wifi/metrics/brand_id=1234/time_basis=utc/dt=2023-06-08/{RUN}-s17.json.gz",
    ],
)
def test_keys_off_the_layout_are_refused(wrong: str) -> None:
    with pytest.raises(AssertionError):
        parse_data_key(wrong)
