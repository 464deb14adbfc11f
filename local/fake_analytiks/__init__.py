"""A faithful local stand-in for the analytiks token + WiFi JSON export API.

Used by the tests, the demo and the benchmark::

    from local.fake_analytiks import FakeAnalytiks, Faults, expected_rows

    with FakeAnalytiks(brands={1234: 120}, page_size=50) as api:
        api.url          # "http://127.0.0.1:PORT"; data at api.url + "/wifi/json/v1".."v4"
        api.token_url    # api.url + "/oauth/token"
        api.faults.queue.extend(["429", "reset"])
        api.stats.calls["/wifi/json/v3"]

Run standalone with ``python -m local.fake_analytiks --help``.
"""

from local.fake_analytiks.data import (
    METRICS,
    ExpectedRow,
    expected_rows,
    is_dark,
    location_ids,
    location_offset_hours,
    metric_value,
    parse_api_date,
    reference_number,
    zone_id,
)
from local.fake_analytiks.server import AUDIENCE, FakeAnalytiks, Faults, Stats

__all__ = [
    "AUDIENCE",
    "METRICS",
    "ExpectedRow",
    "FakeAnalytiks",
    "Faults",
    "Stats",
    "expected_rows",
    "is_dark",
    "location_ids",
    "location_offset_hours",
    "metric_value",
    "parse_api_date",
    "reference_number",
    "zone_id",
]
