"""The table of docs/contracts.md ("S3 layout", "Row schema") written out by hand:
what the tests expect the table to look like.

Nothing here is imported from the exporter. The exporter has its own copy
(`exporter/schema.py`, the key layout of its run protocol); the tests compare what
the exporter *writes* against these literals, so a slip on either side shows up as
a failure instead of being mirrored into the expectation. `tests/unit/test_contract.py`
also holds the exporter's declarations against them.

* `METRIC_COLUMN`: analytiks API metric name -> table column (docs/contracts.md, "Row schema").
* `COLUMNS` / `PARTITION_KEYS`: the table's columns and Glue types, in order
  (docs/contracts.md, "Row schema", `utc_offset` last).
  `LINE_COLUMNS`: the fields a JSON line may hold, in order (`time_basis` too,
  which the table declares as a partition key only).
* `DataKey` / `parse_data_key`: the S3 layout of table objects,
  `<DATA_PREFIX>/brand_id=<int>/time_basis=<utc|local>/dt=<YYYY-MM-DD>/<runId>-w<k>-s<step>.json.gz`.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

# API name -> column, docs/contracts.md "Row schema": visits, dwell_time_ms, ... over_60_mins.
METRIC_COLUMN: Final[dict[str, str]] = {
    "visits": "visits",
    "dwellTime": "dwell_time_ms",
    "bounces": "bounces",
    "allVisits": "all_visits",
    "walkBys": "walk_bys",
    "newVisitors": "new_visitors",
    "returningVisitors": "returning_visitors",
    "under15Mins": "under_15_mins",
    "from15To30Mins": "from_15_to_30_mins",
    "from30To45Mins": "from_30_to_45_mins",
    "from45To60Mins": "from_45_to_60_mins",
    "over60Mins": "over_60_mins",
}

# The table's data columns with their Glue/Athena types, in table order
# (brand_id and time_basis are row-schema columns that the table declares as
# partition keys: Glue allows no data column with a partition key's name).
COLUMNS: Final[tuple[tuple[str, str], ...]] = (
    ("location_id", "bigint"),
    ("reference_number", "string"),
    ("zone_id", "string"),
    ("ts", "timestamp"),
    ("visits", "bigint"),
    ("dwell_time_ms", "bigint"),
    ("bounces", "bigint"),
    ("all_visits", "bigint"),
    ("walk_bys", "bigint"),
    ("new_visitors", "bigint"),
    ("returning_visitors", "bigint"),
    ("under_15_mins", "bigint"),
    ("from_15_to_30_mins", "bigint"),
    ("from_30_to_45_mins", "bigint"),
    ("from_45_to_60_mins", "bigint"),
    ("over_60_mins", "bigint"),
    ("extra", "map<string,bigint>"),
    ("run_id", "string"),
    ("utc_offset", "string"),
)
PARTITION_KEYS: Final[tuple[tuple[str, str], ...]] = (
    ("brand_id", "bigint"),
    ("time_basis", "string"),
    ("dt", "date"),
)
# A JSON line: the data columns with `time_basis` after `ts` (docs/contracts.md, "Row schema").
LINE_COLUMNS: Final[tuple[tuple[str, str], ...]] = (
    *COLUMNS[:4],
    ("time_basis", "string"),
    *COLUMNS[4:],
)
BASES: Final = ("utc", "local")

_DATA_KEY: Final = re.compile(
    r"(?P<prefix>.+)/brand_id=(?P<brand>[1-9][0-9]*)/time_basis=(?P<basis>utc|local)/"
    r"dt=(?P<dt>\d{4}-\d{2}-\d{2})/"
    r"(?P<run>[^/]+)-w(?P<window>0|[1-9][0-9]*)-s(?P<step>0|[1-9][0-9]*)\.json\.gz"
)


class DataKey(NamedTuple):
    """The parts of a table object's key."""

    prefix: str
    brand_id: int
    basis: str
    dt: str
    run_id: str
    window: int
    step: int

    @property
    def key(self) -> str:
        """`<prefix>/brand_id=<int>/time_basis=<b>/dt=<YYYY-MM-DD>/<runId>-w<k>-s<step>.json.gz`"""
        return (
            f"{self.prefix}/brand_id={self.brand_id}/time_basis={self.basis}/dt={self.dt}/"
            f"{self.run_id}-w{self.window}-s{self.step}.json.gz"
        )


def parse_data_key(key: str) -> DataKey:
    """The parts of a table object's key; AssertionError if it breaks the layout."""
    m = _DATA_KEY.fullmatch(key)
    assert m is not None, (
        f"{key!r} is not <prefix>/brand_id=/time_basis=/dt=/<runId>-w<k>-s<n>.json.gz"
    )
    parsed = DataKey(
        m["prefix"],
        int(m["brand"]),
        m["basis"],
        m["dt"],
        m["run"],
        int(m["window"]),
        int(m["step"]),
    )
    assert parsed.key == key, key
    return parsed
