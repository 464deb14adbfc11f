"""The local fake analytiks API over real loopback HTTP, driven by urllib3."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import urllib3
from urllib3.exceptions import ProtocolError, ReadTimeoutError

from local.fake_analytiks import (
    METRICS,
    FakeAnalytiks,
    Faults,
    Quirks,
    expected_rows,
    is_dark,
    location_ids,
    location_offset_hours,
    metric_value,
    offset_text,
    reference_number,
    zone_id,
)

AUDIENCE = "https://gql.analytiks.ai"
DAY = {"startDate": "2023-06-08T00:00:00.000Z", "endDate": "2023-06-08T23:00:00.000Z"}
LOC = 123400001
Make = Callable[..., FakeAnalytiks]


class Client:
    """A thin real HTTP client: no retries, so every status and fault is visible."""

    def __init__(
        self,
        api: FakeAnalytiks,
        client_id: str = "demo-client",
        secret: str = "demo-secret",
    ) -> None:
        self.api = api
        self.client_id, self.secret = client_id, secret
        self.http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=2, read=5))
        self.access_token: str | None = None

    def token_request(self, body: Any, path: str = "/oauth/token") -> urllib3.BaseHTTPResponse:
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        return self.http.request(
            "POST", self.api.url + path, body=data, headers={"Content-Type": "application/json"}
        )

    def credentials(self) -> dict[str, str]:
        return {
            "client_id": self.client_id,
            "client_secret": self.secret,
            "audience": AUDIENCE,
            "grant_type": "client_credentials",
        }

    def token(self) -> str:
        if self.access_token is None:
            r = self.token_request(self.credentials())
            assert r.status == 200, r.data
            self.access_token = orjson.loads(r.data)["access_token"]
        return self.access_token

    def post(
        self,
        variant: str,
        body: Any,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> urllib3.BaseHTTPResponse:
        hdrs = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {token or self.token()}",
        }
        hdrs.update(headers or {})
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        kw: dict[str, Any] = {}
        if timeout is not None:
            kw["timeout"] = urllib3.Timeout(connect=2, read=timeout)
        return self.http.request(
            "POST", f"{self.api.url}/wifi/json/{variant}", body=data, headers=hdrs, **kw
        )

    def json(self, variant: str, body: Any, status: int = 200, **kw: Any) -> Any:
        r = self.post(variant, body, **kw)
        assert r.status == status, (r.status, r.data[:300])
        return orjson.loads(r.data)

    def walk(self, brand: int, dates: dict[str, str]) -> Iterator[dict[str, Any]]:
        """Every page of a v3 cursor walk."""
        cursor = None
        while True:
            page = self.json("v3", {**dates, "brandId": brand, "cursor": cursor})
            yield page
            cursor = page["cursor"]
            if cursor is None:
                return


@pytest.fixture
def client(fake_api: FakeAnalytiks) -> Client:
    return Client(fake_api)


def as_rows(records: list[dict[str, Any]]) -> list[tuple[int, str, dict[str, int]]]:
    """v1-v3 records -> (location id, 'YYYY-MM-DD HH:MM:SS', {metric: value}) rows."""
    rows: dict[tuple[int, str], dict[str, int]] = {}
    for record in records:
        for metric, series in record.items():
            if metric in ("locationId", "referenceNumber", "zoneId"):
                continue
            for key, value in series.items():
                ts = key.removesuffix("Z").replace("T", " ")
                rows.setdefault((record["locationId"], ts), {})[metric] = value
    return [(loc, ts, values) for (loc, ts), values in sorted(rows.items())]


def utc_of(key: str) -> datetime:
    assert key.endswith("Z"), key
    return datetime.strptime(key, "%Y-%m-%dT%H:%M:%SZ")


# ----------------------------------------------------------------------- token endpoint


def test_token_success_on_both_paths(make_fake_api: Make):
    api = make_fake_api(token_ttl=3600)
    c = Client(api)
    for path in ("/oauth/token", "/"):
        r = c.token_request(c.credentials(), path)
        assert r.status == 200
        body = orjson.loads(r.data)
        assert set(body) == {"access_token", "expires_in", "token_type"}
        assert body["expires_in"] == 3600
        assert body["token_type"] == "Bearer"
        assert len(body["access_token"]) >= 32
    assert api.token_url == api.url + "/oauth/token"
    assert api.stats.tokens_issued == 2


@pytest.mark.parametrize(
    ("change", "status", "needle"),
    [
        ({"client_secret": "wrong"}, 401, "client"),
        ({"client_id": "nobody"}, 401, "client"),
        ({"client_secret": None}, 400, "client_secret"),
        ({"client_id": None}, 400, "client_id"),
        ({"audience": None}, 400, "audience"),
        ({"grant_type": None}, 400, "grant_type"),
        ({"grant_type": "password"}, 400, "grant_type"),
        ({"audience": "https://example.com"}, 400, "audience"),
    ],
)
def test_token_errors(client: Client, change: dict[str, Any], status: int, needle: str):
    body = {k: v for k, v in {**client.credentials(), **change}.items() if v is not None}
    r = client.token_request(body)
    assert r.status == status
    payload = orjson.loads(r.data)
    assert payload["error"]
    assert needle in payload["message"]


@pytest.mark.parametrize("raw", [b"client_id=x", b"[1, 2]", b""])
def test_token_rejects_non_json_object(client: Client, raw: bytes):
    r = client.token_request(raw)
    assert r.status == 400
    assert "JSON" in orjson.loads(r.data)["message"]


def test_get_is_not_allowed_and_unknown_paths_404(client: Client):
    r = client.http.request("GET", client.api.url + "/wifi/json/v3")
    assert r.status == 405
    assert r.headers["Allow"] == "POST"
    assert client.http.request("GET", client.api.url + "/health").status == 200
    r = client.http.request("POST", client.api.url + "/wifi/json/v9", body=b"{}")
    assert r.status == 404


# ----------------------------------------------------------------------- authentication


def test_data_401_without_valid_token(client: Client):
    body = {**DAY, "locations": [LOC]}
    r = client.http.request(
        "POST",
        client.api.url + "/wifi/json/v1",
        body=orjson.dumps(body),
        headers={"Content-Type": "application/json"},
    )
    assert r.status == 401
    assert "Authorization" in orjson.loads(r.data)["message"]
    assert client.post("v1", body, token="not-a-token").status == 401
    r = client.post("v1", body, headers={"Authorization": f"Basic {client.token()}"})
    assert r.status == 401
    assert client.post("v1", body).status == 200


def test_revoke_tokens(client: Client):
    body = {**DAY, "locations": [LOC]}
    old = client.token()
    assert client.post("v1", body).status == 200
    client.api.revoke_tokens()
    r = client.post("v1", body, token=old)
    assert r.status == 401
    assert "revoked" in orjson.loads(r.data)["message"]
    client.access_token = None
    assert client.post("v1", body).status == 200


def test_expired_token(make_fake_api: Make):
    c = Client(make_fake_api(token_ttl=0))
    r = c.post("v3", {**DAY, "brandId": 1234})
    assert r.status == 401
    assert "expired" in orjson.loads(r.data)["message"]


# ----------------------------------------------------------------------- validation

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


# ----------------------------------------------------------------------- shapes and data


def test_v1_by_locations_utc(client: Client):
    locs = location_ids(1234, 5)
    records = client.json("v1", {**DAY, "locations": locs})
    assert [r["locationId"] for r in records] == locs
    for record in records:
        assert "referenceNumber" not in record
        assert set(record) - {"locationId"} <= set(METRICS)
        for metric in METRICS:
            series = record.get(metric, {})
            for key, value in series.items():
                assert value > 0  # zeros are omitted
                assert value == metric_value(record["locationId"], metric, utc_of(key))
            # omitted buckets really are zero
            for h in range(24):
                key = f"2023-06-08T{h:02d}:00:00Z"
                if key not in series:
                    assert metric_value(record["locationId"], metric, utc_of(key)) == 0


def test_v1_by_reference_numbers_and_zone(client: Client):
    refs = [reference_number(LOC), reference_number(LOC + 1)]
    records = client.json("v1", {**DAY, "brandId": 1234, "referenceNumbers": refs})
    assert [(r["locationId"], r["referenceNumber"]) for r in records] == [
        (LOC, refs[0]),
        (LOC + 1, refs[1]),
    ]
    by_loc = client.json("v1", {**DAY, "locations": [LOC + 2]})
    by_zone = client.json("v1", {**DAY, "zoneId": zone_id(LOC + 2)})
    assert by_zone[0].pop("zoneId") == zone_id(LOC + 2)
    assert by_zone == by_loc


def test_v2_shape_all_authorized(client: Client):
    body = client.json("v2", {**DAY, "locations": [LOC, LOC + 1]})
    assert body["failures"] == {}
    assert body["successes"] == client.json("v1", {**DAY, "locations": [LOC, LOC + 1]})


def test_v3_shape_and_reference_numbers(client: Client):
    page = client.json("v3", {**DAY, "brandId": 777})
    assert page["cursor"] is None
    assert [r["locationId"] for r in page["data"]] == location_ids(777, 3)
    assert all(r["referenceNumber"] == reference_number(r["locationId"]) for r in page["data"])
    by_loc = client.json("v1", {**DAY, "locations": location_ids(777, 3)})
    assert [{k: v for k, v in r.items() if k != "referenceNumber"} for r in page["data"]] == by_loc


def test_v4_zero_fills_every_bucket(client: Client):
    body = {
        "startDate": "2023-06-08T11:30:00.000Z",
        "endDate": "2023-06-08T23:45:00.000Z",
        "locations": [LOC, LOC + 1],
    }
    records = client.json("v4", body)
    keys = [f"2023-06-08T{h:02d}:00:00Z" for h in range(12, 24)]
    zeros = 0
    for record in records:
        assert set(record) == {"locationId", *METRICS}
        for metric in METRICS:
            assert list(record[metric]) == keys
            for key, value in record[metric].items():
                assert value == metric_value(record["locationId"], metric, utc_of(key))
                zeros += value == 0
    assert zeros > 0
    v1 = client.json("v1", body)
    for full, sparse in zip(records, v1, strict=True):
        for metric in METRICS:
            assert {k: v for k, v in full[metric].items() if v} == sparse.get(metric, {})


def test_v1_v2_v3_omit_zeros_and_dark_locations_keep_only_the_id(client: Client):
    dark = next(loc for loc in location_ids(1234, 120) if is_dark(loc))
    assert client.json("v1", {**DAY, "locations": [dark]}) == [{"locationId": dark}]
    assert client.json("v2", {**DAY, "locations": [dark]})["successes"] == [{"locationId": dark}]
    records = [r for page in client.walk(1234, DAY) for r in page["data"]]
    assert {"locationId": dark, "referenceNumber": reference_number(dark)} in records
    v4 = client.json("v4", {**DAY, "locations": [dark]})[0]
    assert all(set(v4[m].values()) == {0} for m in METRICS)
    # a single closed bucket: every metric omitted
    for loc in location_ids(1234, 120):
        if not is_dark(loc) and not any(
            metric_value(loc, m, datetime(2023, 6, 8, 5)) for m in METRICS
        ):
            one = {"startDate": "2023-06-08T05:00:00Z", "endDate": "2023-06-08T05:00:00Z"}
            assert client.json("v1", {**one, "locations": [loc]}) == [{"locationId": loc}]
            break
    else:
        pytest.fail("no closed bucket found")


def test_local_time_keys_use_each_locations_offset(client: Client):
    a = LOC
    b = next(
        loc
        for loc in location_ids(1234, 120)
        if location_offset_hours(loc) != location_offset_hours(a)
    )
    local = {"startDate": "2023-06-08T09:00:00.000", "endDate": "2023-06-08T12:00:00.000"}
    records = client.json("v4", {**local, "locations": [a, b]})
    keys = [f"2023-06-08T{h:02d}:00:00" for h in range(9, 13)]
    utc_keys: dict[int, list[str]] = {}
    for record in records:
        loc = record["locationId"]
        offset = location_offset_hours(loc)
        assert list(record["visits"]) == keys  # local wall times, no Z
        utc_keys[loc] = []
        for key in keys:
            utc = datetime.fromisoformat(key) - timedelta(hours=offset)
            utc_keys[loc].append(utc.strftime("%Y-%m-%dT%H:%M:%SZ"))
            for metric in METRICS:
                assert record[metric][key] == metric_value(loc, metric, utc)
    # the same local range is a different UTC range per location
    assert utc_keys[a] != utc_keys[b]
    for loc in (a, b):
        window = {"startDate": utc_keys[loc][0], "endDate": utc_keys[loc][-1]}
        (utc_record,) = client.json("v4", {**window, "locations": [loc]})
        (local_record,) = [r for r in records if r["locationId"] == loc]
        assert list(utc_record["dwellTime"].values()) == list(local_record["dwellTime"].values())
    sparse = client.json("v1", {**local, "locations": [a, b]})
    assert all(not k.endswith("Z") for r in sparse for m in METRICS for k in r.get(m, {}))


def test_fifteen_minute_buckets_and_extra_metrics(make_fake_api: Make):
    c = Client(make_fake_api(bucket_minutes=15, extra_metrics=("footfallScore",)))
    body = {
        "startDate": "2023-06-08T10:00:00Z",
        "endDate": "2023-06-08T12:00:00Z",
        "locations": [LOC],
    }
    (record,) = c.json("v4", body)
    assert set(record) == {"locationId", *METRICS, "footfallScore"}
    assert list(record["visits"]) == [
        f"2023-06-08T{10 + q // 4:02d}:{15 * (q % 4):02d}:00Z" for q in range(9)
    ]
    for key, value in record["footfallScore"].items():
        assert value == metric_value(LOC, "footfallScore", utc_of(key))
    assert any(record["footfallScore"].values())


# ----------------------------------------------------------------------- v3 cursor walk


def test_cursor_walk_covers_every_location_once(client: Client):
    pages = list(client.walk(1234, DAY))
    assert [len(p["data"]) for p in pages] == [50, 50, 20]
    assert all(isinstance(p["cursor"], str) for p in pages[:-1])
    ids = [r["locationId"] for p in pages for r in p["data"]]
    assert ids == location_ids(1234, 120)
    assert client.api.stats.pages_served == 3


def test_cursor_is_reusable(client: Client):
    first = client.json("v3", {**DAY, "brandId": 1234})
    again = client.json("v3", {**DAY, "brandId": 1234, "cursor": first["cursor"]})
    twice = client.json("v3", {**DAY, "brandId": 1234, "cursor": first["cursor"]})
    assert again == twice
    assert again["data"][0]["locationId"] == location_ids(1234, 120)[50]


def test_cursor_is_bound_to_server_and_query(make_fake_api: Make, client: Client):
    cursor = client.json("v3", {**DAY, "brandId": 1234})["cursor"]
    payload, sig = cursor.split(".")
    tampered = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB") + "." + sig
    for bad in ("garbage", "", "a.b.c", "!!!.???", tampered, cursor + "x"):
        r = client.post("v3", {**DAY, "brandId": 1234, "cursor": bad})
        if bad == "":
            assert r.status == 200  # empty string = first page, like null
            continue
        assert r.status == 400, bad
        assert orjson.loads(r.data)["message"].startswith("invalid cursor")
    other = Client(make_fake_api())
    foreign = other.json("v3", {**DAY, "brandId": 1234})["cursor"]
    r = client.post("v3", {**DAY, "brandId": 1234, "cursor": foreign})
    assert r.status == 400
    assert "invalid cursor" in orjson.loads(r.data)["message"]
    for changed in (
        {**DAY, "endDate": "2023-06-08T22:00:00.000Z"},
        {**DAY, "startDate": "2023-06-08T01:00:00.000Z"},
        {"startDate": "2023-06-08T00:00:00.000", "endDate": "2023-06-08T23:00:00.000"},
    ):
        r = client.post("v3", {**changed, "brandId": 1234, "cursor": cursor})
        assert r.status == 400
        assert "another query" in orjson.loads(r.data)["message"]


@pytest.mark.parametrize(
    ("start", "end", "kw"),
    [
        ("2023-06-08T00:00:00.000Z", "2023-06-10T00:00:00.000Z", {}),
        ("2023-06-08T11:30:00.000Z", "2023-06-08T23:45:00.000Z", {}),
        ("2023-06-08T00:00:00.000", "2023-06-09T00:00:00.000", {}),
        ("2023-06-01T00:00:00Z", "2023-06-06T00:00:00Z", {"page_size": 37}),
        (
            "2023-06-08T00:00:00",
            "2023-06-08T12:00:00",
            {"bucket_minutes": 15, "extra_metrics": ("footfallScore",)},
        ),
    ],
)
def test_expected_rows_agree_with_a_v3_walk(make_fake_api: Make, start: str, end: str, kw: Any):
    api = make_fake_api(**kw)
    c = Client(api)
    records = [r for p in c.walk(1234, {"startDate": start, "endDate": end}) for r in p["data"]]
    expected = list(
        expected_rows(
            1234,
            120,
            start,
            end,
            bucket_minutes=kw.get("bucket_minutes", 60),
            extra_metrics=kw.get("extra_metrics", ()),
        )
    )
    assert as_rows(records) == [tuple(r) for r in expected]
    assert len(expected) > 100


# ----------------------------------------------------------------------- authorization

LIMITED = {"demo-client": ("demo-secret", None), "limited": ("pw", [777])}


@pytest.fixture
def limited(make_fake_api: Make) -> Client:
    return Client(make_fake_api(clients=LIMITED), "limited", "pw")


@pytest.mark.parametrize("variant", ["v1", "v4"])
def test_v1_v4_reject_the_whole_request(limited: Client, variant: str):
    mine, theirs = location_ids(777, 1)[0], LOC
    assert limited.post(variant, {**DAY, "locations": [mine]}).status == 200
    for body in (
        {"locations": [mine, theirs]},
        {"locations": [mine, 77700099]},  # unknown location
        {"locations": [999]},
        {"brandId": 1234, "referenceNumbers": [reference_number(theirs)]},
        {"brandId": 777, "referenceNumbers": [reference_number(mine), "nope"]},
        {"zoneId": zone_id(theirs)},
        {"zoneId": "11111111-1111-1111-1111-111111111111"},
    ):
        r = limited.post(variant, {**DAY, **body})
        assert r.status == 401, body
        assert orjson.loads(r.data)["message"] == "You are not authorized to query these locations"
    assert limited.post(variant, {**DAY, "zoneId": zone_id(mine)}).status == 200


def test_v2_partial_responses(limited: Client):
    mine, theirs = location_ids(777, 2), [LOC, 999]
    body = limited.json("v2", {**DAY, "locations": [theirs[0], *mine, theirs[1]]})
    assert [r["locationId"] for r in body["successes"]] == mine
    assert body["failures"] == {
        "description": "You are not authorized to query these locations",
        "locations": theirs,
    }
    refs = limited.json(
        "v2", {**DAY, "brandId": 777, "referenceNumbers": [reference_number(mine[0]), "X-1"]}
    )
    assert [r["referenceNumber"] for r in refs["successes"]] == [reference_number(mine[0])]
    assert refs["failures"]["locations"] == ["X-1"]
    assert limited.post("v2", {**DAY, "locations": theirs}).status == 401
    assert limited.post("v2", {**DAY, "zoneId": zone_id(LOC)}).status == 401
    assert limited.json("v2", {**DAY, "zoneId": zone_id(mine[0])})["failures"] == {}


def test_v3_brand_authorization(limited: Client, client: Client):
    assert limited.post("v3", {**DAY, "brandId": 1234}).status == 401
    assert limited.post("v3", {**DAY, "brandId": 4242}).status == 401
    assert limited.json("v3", {**DAY, "brandId": 777})["cursor"] is None
    assert client.post("v3", {**DAY, "brandId": 4242}).status == 401


# ----------------------------------------------------------------------- faults

BODY = {**DAY, "locations": [LOC]}


@pytest.mark.parametrize(("retry_after", "header"), [(1, "1"), (0, "0"), (2.5, "2.5")])
def test_429_with_retry_after(client: Client, retry_after: float, header: str):
    client.token()
    client.api.faults.retry_after = retry_after
    client.api.faults.queue.append("429")
    r = client.post("v1", BODY)
    assert r.status == 429
    assert r.headers["Retry-After"] == header
    assert client.post("v1", BODY).status == 200


@pytest.mark.parametrize("status", ["500", "502", "503"])
def test_5xx(client: Client, status: str):
    client.token()
    client.api.faults.queue.extend([status, status])
    assert [client.post("v3", {**DAY, "brandId": 777}).status for _ in range(3)] == [
        int(status),
        int(status),
        200,
    ]
    assert client.api.stats.faults[status] == 2


def test_reset_truncate_and_slow(client: Client):
    client.token()
    client.api.faults.slow_seconds = 0.5
    client.api.faults.queue.extend(["reset", "truncate", "slow"])
    with pytest.raises(ProtocolError) as reset:
        client.post("v1", BODY)
    assert isinstance(reset.value.args[1], ConnectionResetError)
    with pytest.raises(ProtocolError, match="IncompleteRead"):
        client.post("v1", BODY)
    with pytest.raises(ReadTimeoutError):
        client.post("v1", BODY, timeout=0.1)
    assert client.post("v1", BODY).status == 200
    assert client.api.stats.faults == {"reset": 1, "truncate": 1, "slow": 1}
    client.api.faults.queue = ["429"]  # type: ignore[assignment]  # a list works too
    assert client.post("v1", BODY).status == 429


def test_faults_in_the_constructor_and_latency(make_fake_api: Make):
    api = make_fake_api(faults=Faults(queue=deque(["503"]), latency=0.2))
    c = Client(api)
    c.token()
    t0 = time.monotonic()
    assert c.post("v1", BODY).status == 503
    assert c.post("v1", BODY).status == 200
    assert time.monotonic() - t0 >= 0.4
    api.faults.latency = 0
    t0 = time.monotonic()
    assert c.post("v1", BODY).status == 200
    assert time.monotonic() - t0 < 0.2


def test_revoke_after(make_fake_api: Make):
    c = Client(make_fake_api(faults=Faults(revoke_after=2)))
    assert [c.post("v1", BODY).status for _ in range(3)] == [200, 200, 401]
    assert c.post("v1", {**BODY, "locations": [1]}).status == 401  # still revoked
    c.access_token = None
    assert [c.post("v3", {**DAY, "brandId": 777}).status for _ in range(3)] == [200, 200, 401]
    assert c.api.stats.tokens_issued == 2


def test_failed_calls_do_not_count_towards_revoke_after(make_fake_api: Make):
    c = Client(make_fake_api(faults=Faults(revoke_after=1)))
    assert c.post("v1", {**BODY, "locations": []}).status == 400
    assert c.post("v1", BODY).status == 200
    assert c.post("v1", BODY).status == 401


def test_token_queue(client: Client):
    client.api.faults.token_queue.extend(["500", "503", "reset"])
    assert client.token_request(client.credentials()).status == 500
    assert client.token_request(client.credentials()).status == 503
    with pytest.raises(ProtocolError):
        client.token_request(client.credentials())
    assert client.token_request(client.credentials()).status == 200
    assert client.api.stats.tokens_issued == 1
    assert client.api.stats.token_faults == {"500": 1, "503": 1, "reset": 1}
    assert client.api.stats.faults == {}
    # token faults do not consume the data queue and vice versa
    client.api.faults.queue.append("429")
    assert client.token_request(client.credentials()).status == 200


def run_statuses(api: FakeAnalytiks, n: int) -> list[int]:
    c = Client(api)
    c.token()
    return [c.post("v3", {**DAY, "brandId": 777}).status for _ in range(n)]


def test_probabilistic_rates_are_seeded(make_fake_api: Make):
    def faults() -> Faults:
        return Faults(rate_429=0.2, rate_5xx=0.3)

    first = run_statuses(make_fake_api(seed=7, faults=faults()), 40)
    again = run_statuses(make_fake_api(seed=7, faults=faults()), 40)
    other = run_statuses(make_fake_api(seed=8, faults=faults()), 40)
    assert first == again
    assert first != other
    assert {429, 500, 502, 503, 200} >= set(first)
    assert 429 in first
    assert {500, 502, 503} & set(first)
    assert 5 <= first.count(200) <= 35


def test_reset_and_truncate_rates(make_fake_api: Make):
    api = make_fake_api(faults=Faults(rate_reset=0.5, rate_truncate=0.5))
    c = Client(api)
    c.token()
    for _ in range(6):
        with pytest.raises(ProtocolError):
            c.post("v1", BODY)
    assert api.stats.faults["reset"] + api.stats.faults["truncate"] == 6
    assert api.stats.faults["reset"] >= 1
    api.faults.rate_reset = api.faults.rate_truncate = 0
    assert c.post("v1", BODY).status == 200


# ----------------------------------------------------------------------- stats and HTTP


def test_stats_counters(client: Client):
    client.token()
    client.post("v1", BODY)
    client.post("v1", BODY)
    client.post("v2", {**BODY, "locations": []})
    list(client.walk(1234, DAY))
    client.api.faults.queue.append("429")
    client.post("v4", BODY)
    stats = client.api.stats
    assert stats.calls == {
        "/oauth/token": 1,
        "/wifi/json/v1": 2,
        "/wifi/json/v2": 1,
        "/wifi/json/v3": 3,
        "/wifi/json/v4": 1,
    }
    assert stats.data_calls == 7
    assert stats.responses == {200: 6, 400: 1, 429: 1}
    assert stats.path_responses["/wifi/json/v2", 400] == 1
    assert stats.faults == {"429": 1}
    assert stats.tokens_issued == 1
    assert stats.pages_served == 3
    assert stats.cache_hits == 1  # the second identical v1 call
    assert stats.bytes_served > 10_000
    client.api.reset_stats()
    assert client.api.stats.calls == {}
    assert client.api.stats.bytes_served == 0


def test_keep_alive(client: Client):
    client.token()
    for _ in range(5):
        assert client.post("v1", BODY).status == 200
    pool = client.http.connection_from_url(client.api.url)
    assert pool.num_connections == 1
    assert pool.num_requests == 6


def test_context_manager_and_restart_free_port():
    with FakeAnalytiks(brands={777: 3}) as api:
        url = api.url
        assert Client(api).json("v3", {**DAY, "brandId": 777})["cursor"] is None
    with pytest.raises(urllib3.exceptions.HTTPError):
        urllib3.PoolManager(retries=False).request("GET", url + "/health", timeout=1)


def test_standalone_entry_point():
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "local.fake_analytiks",
            "--port",
            "0",
            "--brands",
            "4321:7",
            "--client",
            "cli:secret",
            "--page-size",
            "5",
            "--extra-metric",
            "footfallScore",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        api = FakeAnalytiks(port=int(url.rsplit(":", 1)[1]))  # not started: lends its url
        c = Client(api, "cli", "secret")
        page = c.json("v3", {**DAY, "brandId": 4321})
        assert [r["locationId"] for r in page["data"]] == location_ids(4321, 5)
        assert any("footfallScore" in r for r in page["data"])
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


# ----------------------------------------------------------------------- quirks


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
