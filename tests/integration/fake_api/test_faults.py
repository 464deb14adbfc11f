"""Fake API injected faults: statuses, resets, truncation, latency, seeded rates."""

from __future__ import annotations

import time
from collections import deque

import pytest
from urllib3.exceptions import ProtocolError, ReadTimeoutError

from local.fake_analytiks import (
    FakeAnalytiks,
    Faults,
    handler,
)
from tests.integration.fake_api.wire import BODY, DAY, Client, Make


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
    client.api.faults.slow_seconds = (
        2.0  # far beyond the 0.1 s read timeout, even on a loaded machine
    )
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


def test_faults_in_the_constructor_and_latency(
    make_fake_api: Make, monkeypatch: pytest.MonkeyPatch
):
    # Only one-sided clock checks: a loaded machine makes answers slower, never faster.
    # That no latency means no wait is read from the waits the handler asks for.
    waits: list[float] = []
    sleep_until = handler._sleep_until

    def recorded(moment: float) -> None:
        waits.append(moment - time.monotonic())
        sleep_until(moment)

    monkeypatch.setattr(handler, "_sleep_until", recorded)
    api = make_fake_api(faults=Faults(queue=deque(["503"]), latency=0.2))
    c = Client(api)
    c.token()
    t0 = time.monotonic()
    assert c.post("v1", BODY).status == 503
    assert c.post("v1", BODY).status == 200
    assert time.monotonic() - t0 >= 0.4
    api.faults.latency = 0
    waits.clear()
    assert c.post("v1", BODY).status == 200
    # (an earlier test's server may still be answering: its waits are no sleep either)
    assert waits and all(w <= 0 for w in waits), waits  # the moment had passed: no sleep


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
