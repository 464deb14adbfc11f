"""The row schema of the Athena table (docs/contracts.md, "Row schema"): the one source of truth.

The writer (rows.py), the Glue table in template.yaml (kept equal by
tests/template) and the demo's queries all derive from these tuples.
"""

from __future__ import annotations

from typing import Final

# API metric name -> column name, in column order. Every one is a bigint that is
# null (omitted from the JSON line) when the API did not report it.
METRIC_COLUMNS: Final[tuple[tuple[str, str], ...]] = (
    ("visits", "visits"),
    ("dwellTime", "dwell_time_ms"),
    ("bounces", "bounces"),
    ("allVisits", "all_visits"),
    ("walkBys", "walk_bys"),
    ("newVisitors", "new_visitors"),
    ("returningVisitors", "returning_visitors"),
    ("under15Mins", "under_15_mins"),
    ("from15To30Mins", "from_15_to_30_mins"),
    ("from30To45Mins", "from_30_to_45_mins"),
    ("from45To60Mins", "from_45_to_60_mins"),
    ("over60Mins", "over_60_mins"),
)

# (column, Athena/Glue type) in table order. Partition keys are separate. A JSON
# line also holds `time_basis` after `ts` (the file says what it is without its key),
# but the table declares it as a partition key only: Glue refuses a data column and a
# partition key of one name (docs/decisions.md, "One dataset per time basis").
COLUMNS: Final[tuple[tuple[str, str], ...]] = (
    ("location_id", "bigint"),
    ("reference_number", "string"),
    ("zone_id", "string"),
    ("ts", "timestamp"),
    *((column, "bigint") for _, column in METRIC_COLUMNS),
    ("extra", "map<string,bigint>"),
    ("run_id", "string"),
    # Added after the first release, so appended: the UTC offset the API's time key
    # stated (`+02:00`), null when it stated none. It tells apart the two 02:00
    # buckets of a local autumn night (docs/contracts.md, "Row schema").
    ("utc_offset", "string"),
)

# brand_id and time_basis are columns of the row schema and partition keys: in Glue
# each is declared once, as a partition key (Athena exposes it as a column).
PARTITION_KEYS: Final[tuple[tuple[str, str], ...]] = (
    ("brand_id", "bigint"),
    ("time_basis", "string"),
    ("dt", "date"),
)
