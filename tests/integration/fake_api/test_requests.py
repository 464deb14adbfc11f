"""Fake API request validation: fields, bodies, date forms, the five-day limit."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from local.fake_analytiks import (
    location_ids,
    zone_id,
)
from tests.integration.fake_api.wire import DAY, LOC, Client

FIVE_DAYS = {"startDate": "2023-06-01T00:00:00Z", "endDate": "2023-06-06T00:00:00Z"}


@pytest.mark.parametrize(
    ("variant", "body", "needle"),
    [
        ("v1", {"endDate": DAY["endDate"], "locations": [LOC]}, "startDate"),
        ("v1", {"startDate": DAY["startDate"], "locations": [LOC]}, "endDate"),
        ("v1", {**DAY, "startDate": 1686182400, "locations": [LOC]}, "startDate"),
        ("v1", {**DAY, "startDate": "2023-06-08T00:00:00+02:00", "locations": [LOC]}, "startDate"),
        ("v1", {**DAY, "endDate": "2023-06-08", "locations": [LOC]}, "endDate"),
        ("v1", {**DAY, "endDate": "2023-06-08T23:00:00", "locations": [LOC]}, "same format"),
        ("v3", {**DAY, "startDate": "2023-06-08T00:00:00", "brandId": 1234}, "same format"),
        ("v1", {**DAY, "endDate": "2023-06-07T23:00:00Z", "locations": [LOC]}, "endDate"),
        (
            "v1",
            {**FIVE_DAYS, "endDate": "2023-06-06T00:00:00.001Z", "locations": [LOC]},
            "5 days",
        ),
        ("v3", {**FIVE_DAYS, "endDate": "2023-06-06T01:00:00Z", "brandId": 1234}, "5 days"),
        ("v1", dict(DAY), "exactly one"),
        ("v1", {**DAY, "locations": [LOC], "zoneId": zone_id(LOC)}, "exactly one"),
        ("v1", {**DAY, "locations": [LOC], "brandId": 1234}, "exactly one"),
        ("v1", {**DAY, "locations": []}, "locations"),
        ("v1", {**DAY, "locations": list(location_ids(1234, 51))}, "locations"),
        ("v1", {**DAY, "locations": [str(LOC)]}, "locations"),
        ("v1", {**DAY, "locations": [True]}, "locations"),
        ("v1", {**DAY, "locations": LOC}, "locations"),
        ("v2", {**DAY, "brandId": 1234}, "referenceNumbers"),
        ("v2", {**DAY, "referenceNumbers": ["REF-1"]}, "brandId"),
        ("v2", {**DAY, "brandId": "1234", "referenceNumbers": ["REF-1"]}, "brandId"),
        ("v2", {**DAY, "brandId": 1234, "referenceNumbers": [1]}, "referenceNumbers"),
        ("v2", {**DAY, "brandId": 1234, "referenceNumbers": []}, "referenceNumbers"),
        ("v2", {**DAY, "brandId": 1234, "referenceNumbers": ["R"] * 51}, "referenceNumbers"),
        ("v4", {**DAY, "zoneId": 5}, "zoneId"),
        ("v4", {**DAY, "zoneId": ""}, "zoneId"),
        ("v1", {**DAY, "locations": [LOC], "limit": 5}, "unknown field(s): limit"),
        ("v1", {**DAY, "locations": [LOC], "cursor": None}, "unknown field(s): cursor"),
        ("v3", dict(DAY), "brandId"),
        ("v3", {**DAY, "brandId": "1234"}, "brandId"),
        ("v3", {**DAY, "brandId": 1234, "cursor": 7}, "cursor"),
        ("v3", {**DAY, "brandId": 1234, "locations": [LOC]}, "unknown field(s): locations"),
    ],
)
def test_validation_errors(client: Client, variant: str, body: dict[str, Any], needle: str):
    r = client.post(variant, body)
    assert r.status == 400, r.data
    assert needle in orjson.loads(r.data)["message"]


@pytest.mark.parametrize(
    ("raw", "content_type", "needle"),
    [
        (b"{}", "text/plain", "Content-Type"),
        (b"not json", "application/json", "JSON"),
        (b"[]", "application/json", "JSON object"),
    ],
)
def test_body_errors(client: Client, raw: bytes, content_type: str, needle: str):
    r = client.post("v1", raw, headers={"Content-Type": content_type})
    assert r.status == 400
    assert needle in orjson.loads(r.data)["message"]


def test_accepted_date_forms_and_exactly_five_days(client: Client):
    ok = [
        ("2023-06-08T11:30:00.000Z", "2023-06-08T23:45:00.000Z"),
        ("2023-06-08T11:30:00Z", "2023-06-08T23:45Z"),
        ("2023-06-08T09:00:00.000", "2023-06-08T23:45:00"),
        (FIVE_DAYS["startDate"], FIVE_DAYS["endDate"]),
        ("2023-06-08T10:00:00Z", "2023-06-08T10:00:00Z"),
    ]
    for start, end in ok:
        body = {"startDate": start, "endDate": end, "locations": [LOC]}
        assert client.post("v1", body).status == 200, (start, end)
    r = client.post(
        "v1",
        {**DAY, "locations": [LOC]},
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert r.status == 200
