"""Fake API as a server: counters, keep-alive, lifecycle, the entry point."""

from __future__ import annotations

import subprocess
import sys

import pytest
import urllib3

from local.fake_analytiks import (
    FakeAnalytiks,
    location_ids,
)
from tests.integration.fake_api.wire import BODY, DAY, Client


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
