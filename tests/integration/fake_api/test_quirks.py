"""Fake API quirks: departures from the happy reading of the document."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from local.fake_analytiks import (
    METRICS,
    Quirks,
    location_ids,
    location_offset_hours,
    metric_value,
    offset_text,
)
from tests.integration.fake_api.wire import DAY, LOC, Client, Make, utc_of


def v3_records(c: Client, brand: int, dates: dict[str, str]) -> dict[int, dict[str, Any]]:
    return {r["locationId"]: r for page in c.walk(brand, dates) for r in page["data"]}


def test_quirks_are_off_by_default(client: Client):
    assert client.api.quirks == Quirks()
    local = v3_records(
        client, 777, {"startDate": "2023-06-08T00:00:00", "endDate": "2023-06-08T23:00:00"}
    )
    utc = v3_records(client, 777, DAY)
    assert set().union(*map(set, local.values())) <= {"locationId", "referenceNumber", *METRICS}
    assert all(not k.endswith("Z") for r in local.values() for m in METRICS for k in r.get(m, {}))
    assert all(k.endswith("Z") for r in utc.values() for m in METRICS for k in r.get(m, {}))


def test_utc_keys_for_local_requests(make_fake_api: Make):
    c = Client(make_fake_api(quirks=Quirks(utc_keys_for_local=True, zero_values=True)))
    local = {"startDate": "2023-06-08T00:00:00.000", "endDate": "2023-06-08T23:59:59.999"}
    for loc, record in v3_records(c, 777, local).items():
        offset = location_offset_hours(loc)
        # The local day's buckets, keyed by their UTC start with a Z.
        start = datetime(2023, 6, 8) - timedelta(hours=offset)
        keys = [(start + timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%SZ") for h in range(24)]
        assert list(record["visits"]) == keys
        for key in keys:
            assert record["walkBys"][key] == metric_value(loc, "walkBys", utc_of(key))
    # A UTC request is answered as documented.
    assert all(k.endswith("Z") for r in v3_records(c, 777, DAY).values() for k in r["visits"])


def test_utc_keys_for_local_requests_are_the_instants_asked_for(make_fake_api: Make):
    """As a real API would: the local day's instants (25 on Berlin's autumn night),
    only spelt in UTC; the same instants the offset keys name."""
    berlin = location_ids(777, 3)[0]
    quirks = Quirks(utc_keys_for_local=True, zones={berlin: "Europe/Berlin"}, zero_values=True)
    c = Client(make_fake_api(quirks=quirks))
    night = {"startDate": "2023-10-29T00:00:00", "endDate": "2023-10-29T23:59:59"}
    in_utc = v3_records(c, 777, night)[berlin]["visits"]
    c.api.quirks.utc_keys_for_local, c.api.quirks.offset_keys = False, True
    with_offsets = v3_records(c, 777, night)[berlin]["visits"]
    instants = [datetime.fromisoformat(k).astimezone(UTC) for k in with_offsets]
    assert [datetime.fromisoformat(k) for k in in_utc] == instants
    assert len(instants) == 25 and list(in_utc.values()) == list(with_offsets.values())
    assert next(iter(in_utc)) == "2023-10-28T22:00:00Z"  # local midnight at +02:00


def test_local_keys_for_utc_requests(make_fake_api: Make):
    c = Client(make_fake_api(quirks=Quirks(local_keys_for_utc=True, zero_values=True)))
    for loc, record in v3_records(c, 777, DAY).items():
        offset = location_offset_hours(loc)
        utc = [datetime(2023, 6, 8, h) for h in range(24)]
        keys = [(u + timedelta(hours=offset)).strftime("%Y-%m-%dT%H:%M:%S") for u in utc]
        assert list(record["visits"]) == keys  # wall-clock time, no suffix
        for key, moment in zip(keys, utc, strict=True):
            assert record["bounces"][key] == metric_value(loc, "bounces", moment)


def test_offset_keys_across_the_autumn_change(make_fake_api: Make):
    berlin, plain = location_ids(777, 3)[:2]
    quirks = Quirks(offset_keys=True, zones={berlin: "Europe/Berlin"}, zero_values=True)
    c = Client(make_fake_api(quirks=quirks))
    night = {"startDate": "2023-10-29T00:00:00.000", "endDate": "2023-10-29T23:59:59.999"}
    records = v3_records(c, 777, night)
    # Berlin's 29 October has 25 hours: 02:00 at +02:00 (00:00 UTC), then at +01:00.
    keys = list(records[berlin]["visits"])
    assert len(keys) == 25
    assert keys[:5] == [
        "2023-10-29T00:00:00+02:00",
        "2023-10-29T01:00:00+02:00",
        "2023-10-29T02:00:00+02:00",
        "2023-10-29T02:00:00+01:00",
        "2023-10-29T03:00:00+01:00",
    ]
    assert keys[-1] == "2023-10-29T23:00:00+01:00"
    for key in keys:
        moment = datetime.fromisoformat(key).astimezone(UTC).replace(tzinfo=None)
        assert records[berlin]["visits"][key] == metric_value(berlin, "visits", moment)
    # Without a zone a location keeps its fixed offset, now spelt out.
    suffix = offset_text(location_offset_hours(plain) * 60)
    assert list(records[plain]["visits"]) == [
        f"2023-10-29T{h:02d}:00:00{suffix}" for h in range(24)
    ]
    # Without offset keys the zone's two 02:00 buckets share one key: the later wins.
    c.api.quirks.offset_keys = False
    collapsed = v3_records(c, 777, night)[berlin]["visits"]
    assert len(collapsed) == 24
    assert collapsed["2023-10-29T02:00:00"] == metric_value(
        berlin, "visits", datetime(2023, 10, 29, 1)
    )
    # Spring: 26 March 2023 has 23 hours in Berlin, and no 02:00.
    spring = {"startDate": "2023-03-26T00:00:00", "endDate": "2023-03-26T23:59:59"}
    c.api.quirks.offset_keys = True
    keys = list(v3_records(c, 777, spring)[berlin]["visits"])
    assert len(keys) == 23 and "2023-03-26T02:00:00+01:00" not in keys


def test_unknown_record_fields_and_zero_values(make_fake_api: Make):
    quirks = Quirks(record_fields={"locationName": "Store {location_id}", "open": True})
    c = Client(make_fake_api(quirks=quirks))
    for record in v3_records(c, 777, DAY).values():
        assert record["locationName"] == f"Store {record['locationId']}"
        assert record["open"] is True
    (record,) = c.json("v1", {**DAY, "locations": [LOC]})
    assert record["locationName"] == f"Store {LOC}"
    assert 0 not in record["visits"].values()
    # Quirks change while the server runs; pages are not served from the old cache.
    c.api.quirks.zero_values = True
    (record,) = c.json("v1", {**DAY, "locations": [LOC]})
    assert len(record["visits"]) == 24 and 0 in record["visits"].values()


def test_quirks_from_the_command_line():
    from local.fake_analytiks.__main__ import build_parser  # noqa: PLC0415

    args = build_parser().parse_args(
        ["--utc-keys-for-local", "--zone", "77700001=Europe/Berlin", "--record-field", "a=b"]
    )
    assert args.utc_keys_for_local and not args.offset_keys
    assert (args.zone, args.record_field) == ([("77700001", "Europe/Berlin")], [("a", "b")])
