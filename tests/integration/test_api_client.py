"""The API client against the fake API over real loopback HTTP: tokens, retries, limits."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from exporter.api_client import AnalytiksClient, RetryPolicy, forget_tokens
from exporter.errors import ApiRejected, PermanentError, TransientError
from exporter.ports import Credentials
from local.fake_analytiks import FakeAnalytiks

START, END = "2023-06-08T00:00:00.000Z", "2023-06-08T23:59:59.999Z"


@pytest.fixture(autouse=True)
def _fresh_tokens() -> None:
    forget_tokens()


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def client(
    api: FakeAnalytiks,
    secret: str = "demo-secret",
    sleeps: Sleeps | None = None,
    **policy: float,
) -> AnalytiksClient:
    return AnalytiksClient(
        api.url,
        api.token_url,
        "https://gql.analytiks.ai",
        lambda: Credentials("demo-client", secret),
        policy=RetryPolicy(**policy),  # type: ignore[arg-type]
        sleep=sleeps if sleeps is not None else Sleeps(),
        jitter=lambda: 0.5,
    )


def plenty() -> float:
    return 600.0


def walk(c: AnalytiksClient, remaining: Callable[[], float] = plenty) -> int:
    cursor, pages = None, 0
    while True:
        data, cursor = c.fetch_v3(1234, START, END, cursor, remaining)
        pages += 1
        assert data
        if cursor is None:
            return pages


def test_walks_all_pages_with_one_token_shared_across_clients(fake_api: FakeAnalytiks) -> None:
    first, second = client(fake_api), client(fake_api)
    assert walk(first) == 3 and walk(second) == 3
    assert first.stats.token_fetches == 1 and second.stats.token_fetches == 0
    assert fake_api.stats.tokens_issued == 1
    assert first.stats.calls == 3 and first.stats.retries == 0


def test_429_honours_retry_after(fake_api: FakeAnalytiks) -> None:
    fake_api.faults.retry_after = 2
    fake_api.faults.queue.extend(["429", "429"])
    sleeps = Sleeps()
    c = client(fake_api, sleeps=sleeps)
    assert walk(c) == 3
    assert sleeps == [2.0, 2.0]
    assert c.stats.retries == 2 and c.stats.calls == 5


@pytest.mark.parametrize("fault", ["500", "502", "503", "reset", "truncate"])
def test_transient_faults_are_retried_with_capped_backoff(
    fake_api: FakeAnalytiks, fault: str
) -> None:
    fake_api.faults.queue.extend([fault] * 3)
    sleeps = Sleeps()
    c = client(fake_api, sleeps=sleeps, base_delay_s=1.0, max_delay_s=3.0)
    assert walk(c) == 3
    assert sleeps == [0.5, 1.0, 1.5]  # jitter 0.5 x min(cap, base x 2^n)
    assert fake_api.stats.faults[fault] == 3


def test_read_timeout_is_retried(fake_api: FakeAnalytiks) -> None:
    fake_api.faults.slow_seconds = 1.5
    fake_api.faults.queue.append("slow")
    c = client(fake_api, read_timeout_s=0.3)
    assert walk(c) == 3
    assert c.stats.retries == 1


def test_revoked_token_is_replaced_once(fake_api: FakeAnalytiks) -> None:
    c = client(fake_api)
    c.fetch_v3(1234, START, END, None, plenty)
    fake_api.revoke_tokens()
    assert walk(c) == 3
    assert c.stats.token_fetches == 2


def test_token_endpoint_failing_for_a_while(fake_api: FakeAnalytiks) -> None:
    fake_api.faults.token_queue.extend(["503", "500", "reset"])
    c = client(fake_api)
    assert walk(c) == 3
    assert c.stats.token_calls == 4


def test_wrong_credentials_are_permanent_and_secret_free(fake_api: FakeAnalytiks) -> None:
    with pytest.raises(PermanentError, match="credentials were rejected") as info:
        walk(client(fake_api, secret="not-the-secret"))
    assert "not-the-secret" not in str(info.value)


def test_unauthorized_brand_is_rejected_after_one_fresh_token(make_fake_api) -> None:
    api = make_fake_api(brands={1234: 5, 99: 5}, clients={"demo-client": ("demo-secret", [99])})
    c = client(api)
    with pytest.raises(ApiRejected, match="brand 1234 is unknown to the API or not authorized"):
        walk(c)
    assert c.stats.token_fetches == 2


def test_api_400_is_permanent(fake_api: FakeAnalytiks) -> None:
    fake_api.faults.queue.append("400")
    with pytest.raises(ApiRejected, match="400"):
        walk(client(fake_api))


def test_gives_up_after_max_attempts(fake_api: FakeAnalytiks) -> None:
    fake_api.faults.rate_5xx = 1.0
    sleeps = Sleeps()
    with pytest.raises(TransientError, match="gave up after 4 attempt"):
        walk(client(fake_api, sleeps=sleeps, max_attempts=4))
    assert len(sleeps) == 3


def test_never_waits_past_the_time_left(fake_api: FakeAnalytiks) -> None:
    fake_api.faults.retry_after = 30
    fake_api.faults.queue.extend(["429"] * 5)
    sleeps = Sleeps()
    with pytest.raises(TransientError, match="429"):
        walk(client(fake_api, sleeps=sleeps), remaining=lambda: 20.0)
    assert sleeps == []  # a 30 s Retry-After does not fit in 20 s: hand over instead


def test_a_retry_that_would_eat_the_hand_over_time_is_not_slept(fake_api: FakeAnalytiks) -> None:
    # A Retry-After short enough to wait inline (2 s), but with the 5 s connect
    # timeout it does not fit in 6 s: give up to the queue instead of sleeping.
    fake_api.faults.retry_after = 2
    fake_api.faults.queue.extend(["429", "429"])
    sleeps = Sleeps()
    with pytest.raises(TransientError, match="429"):
        walk(client(fake_api, sleeps=sleeps), remaining=lambda: 6.0)
    assert sleeps == []
    walk(client(fake_api, sleeps=sleeps), remaining=lambda: 7.5)  # it fits: waited
    assert sleeps == [2.0]


def test_tls_failure_is_permanent(fake_api: FakeAnalytiks) -> None:
    # Speaking TLS to a plain-HTTP port fails the handshake: not retried.
    c = AnalytiksClient(
        fake_api.url.replace("http://", "https://"),
        fake_api.token_url.replace("http://", "https://"),
        "https://gql.analytiks.ai",
        lambda: Credentials("demo-client", "demo-secret"),
        sleep=Sleeps(),
    )
    with pytest.raises(PermanentError, match="TLS"):
        walk(c)
