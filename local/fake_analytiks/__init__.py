"""A faithful local stand-in for the analytiks token + WiFi JSON export API.

Used by the tests, the demo and the benchmark::

    from local.fake_analytiks import FakeAnalytiks, Faults, expected_rows

    with FakeAnalytiks(brands={1234: 120}, page_size=50) as api:
        api.url          # "http://127.0.0.1:PORT"; data at api.url + "/wifi/json/v1".."v4"
        api.token_url    # api.url + "/oauth/token"
        api.faults.queue.extend(["429", "reset"])
        api.quirks.utc_keys_for_local = True  # departures from the document, off by default
        api.stats.calls["/wifi/json/v3"]

Run standalone with ``python -m local.fake_analytiks --help``. What differs between
v1..v4 (path, answer shape, refusal policy, zero fill) is read from the exporter's
own entries (``exporter.variants``), so a new variant is served where it is defined.
"""

from local.fake_analytiks.data import (
    METRICS,
    is_dark,
    local_buckets,
    location_ids,
    location_offset_hours,
    metric_value,
    offset_text,
    parse_api_date,
    reference_number,
    utc_offset_minutes,
    zone_id,
)
from local.fake_analytiks.expected import ExpectedRow, expected_rows
from local.fake_analytiks.faults import Faults
from local.fake_analytiks.meter import Stats
from local.fake_analytiks.protocol import AUDIENCE
from local.fake_analytiks.records import Quirks
from local.fake_analytiks.server import FakeAnalytiks

__all__ = [
    "AUDIENCE",
    "METRICS",
    "ExpectedRow",
    "FakeAnalytiks",
    "Faults",
    "Quirks",
    "Stats",
    "expected_rows",
    "is_dark",
    "local_buckets",
    "location_ids",
    "location_offset_hours",
    "metric_value",
    "offset_text",
    "parse_api_date",
    "reference_number",
    "utc_offset_minutes",
    "zone_id",
]
