"""Fake API token endpoint, authentication and authorization over HTTP."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from local.fake_analytiks import (
    location_ids,
    reference_number,
    zone_id,
)
from tests.integration.fake_api.wire import DAY, LOC, Client, Make

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


# ----------------------------------------------------------------------- authorization


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
