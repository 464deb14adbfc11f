"""The API rate budget over real HTTP: the fake's rate limit, the client's pacing and
429 storms handed to the queue as delayed checkpoints (docs/decisions.md, "Scale")."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import date
from types import SimpleNamespace

import pytest

from exporter import wiring
from exporter.api_client import AnalytiksClient, RetryPolicy, forget_tokens
from exporter.errors import OutOfTime, Throttled, TransientError
from exporter.pacing import Pacer
from exporter.ports import Credentials
from local.fake_analytiks import FakeAnalytiks
from local.fake_analytiks import faults as fake_faults
from tests.integration.conftest import Lab, expected

START, END = "2023-06-08T00:00:00.000Z", "2023-06-08T23:59:59.999Z"


@pytest.fixture(autouse=True)
def _fresh_tokens() -> None:
    forget_tokens()


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


class Slots:
    """A pacer's fake clock: counts the slots taken and the time slept for them."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def client(
    api: FakeAnalytiks,
    sleeps: Sleeps | None = None,
    pacer: Pacer | None = None,
    **policy: float,
) -> AnalytiksClient:
    return AnalytiksClient(
        api.url,
        api.token_url,
        "https://gql.analytiks.ai",
        lambda: Credentials("demo-client", "demo-secret"),
        policy=RetryPolicy(**policy),  # type: ignore[arg-type]
        sleep=sleeps if sleeps is not None else Sleeps(),
        jitter=lambda: 0.5,
        pacer=pacer,
    )


def walk(c: AnalytiksClient, remaining: Callable[[], float] = lambda: 600.0) -> int:
    cursor, pages = None, 0
    while True:
        _, cursor = c.fetch_v3(1234, START, END, cursor, remaining)
        pages += 1
        if cursor is None:
            return pages


def post(api: FakeAnalytiks, token: str) -> tuple[int, str | None]:
    body = json.dumps({"startDate": START, "endDate": END, "brandId": 777}).encode()
    request = urllib.request.Request(  # noqa: S310 -- the loopback fake
        api.url + "/wifi/json/v3",
        data=body,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310
            return answer.status, None
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Retry-After")


def frozen_limiter(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The fake's rate limiter on a clock of the test's: a loaded machine cannot
    stretch a burst past a refill. Move time by adding to the list's one item."""
    clock = [1000.0]
    monkeypatch.setattr(fake_faults, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    return clock


def test_the_fake_answers_429_above_its_rate_limit_and_counts_arrivals(
    fake_api: FakeAnalytiks, monkeypatch: pytest.MonkeyPatch
) -> None:
    frozen_limiter(monkeypatch)
    fake_api.faults.rate_limit = 2.0
    fake_api.faults.rate_limit_burst = 3.0
    fake_api.faults.retry_after = 1
    token = fake_api.issue_token()
    answers = [post(fake_api, token) for _ in range(8)]
    assert answers[:3] == [(200, None)] * 3  # the burst
    assert (429, "1") in answers[3:]
    assert len(fake_api.arrivals()) == 8  # every request is counted, refused or not
    assert fake_api.stats.faults["rate-limit"] == sum(1 for s, _ in answers if s == 429)
    fake_api.faults.rate_limit = None  # off again: no limit
    assert all(post(fake_api, token)[0] == 200 for _ in range(5))


def test_the_fakes_sliding_limiter_allows_so_many_in_any_second(
    fake_api: FakeAnalytiks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stricter than the bucket: no burst on top of a second's worth, ever."""
    clock = frozen_limiter(monkeypatch)
    fake_api.faults.rate_limit = 3.0
    fake_api.faults.rate_limit_sliding = True
    token = fake_api.issue_token()
    answers = [post(fake_api, token)[0] for _ in range(6)]
    assert answers == [200] * 3 + [429] * 3  # all inside one second: 3 served, 3 refused
    clock[0] += 1.05  # the window has moved on: three more
    assert [post(fake_api, token)[0] for _ in range(3)] == [200] * 3
    assert fake_api.stats.faults["rate-limit"] == answers.count(429)


def test_a_429_slows_the_containers_pacer_and_holds_it_for_the_retry_after(
    fake_api: FakeAnalytiks,
) -> None:
    slots = Slots()
    pacer = Pacer(4.0, clock=slots.clock, sleep=slots.sleep)
    fake_api.faults.retry_after = 2
    fake_api.faults.queue.append("429")
    sleeps = Sleeps()
    c = client(fake_api, sleeps=sleeps, pacer=pacer)
    assert walk(c) == 3
    assert pacer.spacing.cuts == 1 and sleeps == [2.0]
    # The transport's sleep is a fake here, so the pacer's own hold shows: the retry
    # waits the 2 s of Retry-After, the two pages after it more than the 0.25 s of 4/s.
    assert slots.slept[0] == pytest.approx(2.0)
    assert len(slots.slept) == 3 and all(wait > 0.25 for wait in slots.slept[1:])


def test_latency_is_a_floor_of_the_whole_answer(fake_api: FakeAnalytiks) -> None:
    fake_api.faults.latency = 0.15
    c = client(fake_api)
    walk(c)
    assert min(c.stats.latencies_ms) >= 150


def test_every_data_request_takes_a_slot_retries_included(fake_api: FakeAnalytiks) -> None:
    slots = Slots()
    pacer = Pacer(4.0, clock=slots.clock, sleep=slots.sleep)
    fake_api.faults.queue.extend(["500", "reset"])
    c = client(fake_api, pacer=pacer)
    assert walk(c) == 3
    assert c.stats.calls == 5 and c.stats.token_calls == 1
    # Five data requests, one slot each (the token request takes none): four waits.
    assert slots.slept == [0.25] * 4


def test_a_pacing_wait_that_does_not_fit_is_a_planned_checkpoint(fake_api: FakeAnalytiks) -> None:
    slots = Slots()
    pacer = Pacer(0.1, clock=slots.clock, sleep=slots.sleep)  # one request every 10 s
    c = client(fake_api, pacer=pacer)
    c.fetch_v3(1234, START, END, None, lambda: 600.0)
    with pytest.raises(OutOfTime):
        c.fetch_v3(1234, START, END, None, lambda: 8.0)  # 10 s to wait, 8 s left
    assert slots.slept == []


def test_three_429_in_a_row_hand_over_to_the_queue(fake_api: FakeAnalytiks) -> None:
    fake_api.faults.retry_after = 0
    fake_api.faults.queue.extend(["429"] * 3)
    sleeps = Sleeps()
    with pytest.raises(Throttled) as info:
        walk(client(fake_api, sleeps=sleeps))
    assert info.value.retry_after_s == 0
    assert sleeps == [0.0, 0.0]  # two short retries, then no more hammering


def test_a_long_retry_after_is_not_slept_in_the_invocation(fake_api: FakeAnalytiks) -> None:
    fake_api.faults.retry_after = 45
    fake_api.faults.queue.append("429")
    sleeps = Sleeps()
    with pytest.raises(Throttled, match="429") as info:
        walk(client(fake_api, sleeps=sleeps))
    assert (info.value.retry_after_s, sleeps) == (45, [])


def test_a_429_that_ends_the_retries_is_a_throttle(fake_api: FakeAnalytiks) -> None:
    fake_api.faults.retry_after = 8
    fake_api.faults.queue.append("429")
    with pytest.raises(Throttled) as info:
        walk(client(fake_api), remaining=lambda: 10.0)  # 8 s + connect do not fit in 10 s
    assert info.value.retry_after_s == 8


def test_mixed_faults_are_not_a_throttle(fake_api: FakeAnalytiks) -> None:
    fake_api.faults.retry_after = 0
    fake_api.faults.queue.extend(["429", "500", "429", "500"])
    with pytest.raises(TransientError) as info:
        walk(client(fake_api, max_attempts=4))
    assert not isinstance(info.value, Throttled)


def test_a_429_storm_backs_off_through_the_queue_and_exports_once(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API allows one request a second; the exporter (no budget configured) asks
    faster, gets 429 with Retry-After: 1, and hands each throttled window to the queue
    delayed instead of sleeping; every row arrives once, one notification."""
    monkeypatch.setattr(
        wiring, "RETRY_POLICY", RetryPolicy(max_inline_wait_s=0.5, base_delay_s=0.05)
    )
    lab.configure(WINDOW_DAYS="1")
    lab.api.faults.rate_limit = 1.0
    lab.api.faults.retry_after = 1
    first, last = date(2023, 6, 1), date(2023, 6, 2)
    lab.run({"brandId": 1234, "startDate": str(first), "endDate": str(last)})
    rows = lab.rows(1234)
    assert {(k[0], k[1]) for k in rows} == set(expected(lab.api, 1234, first, last, "utc"))
    (note,) = lab.notifications()
    assert note["body"]["status"] == "succeeded"
    assert lab.api.stats.faults["rate-limit"] > 0
    # It backed off through the queue: a step re-sent before its first page (a
    # back-off object), or a step that recorded pages and delayed the next one.
    state = lab.list_keys(lab.env["STATE_PREFIX"] + "/runs/")
    delayed = [
        k
        for k in state
        if "/steps/" in k
        and k.endswith(".json")
        and b"delaySeconds" in lab.s3.get_object(Bucket=lab.bucket, Key=k)["Body"].read()
    ]
    assert [k for k in state if "/backoff/" in k] or delayed
