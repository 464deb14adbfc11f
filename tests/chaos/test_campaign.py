"""A fault and bad-input campaign: every scenario is a real run through the handler,
moto and an HTTP API, and must end in one of two ways:

* succeeded: every expected row exactly once and exactly one success notification;
* failed: nothing committed under the data prefix (earlier data untouched) and
  exactly one failure notification;

never partial or doubled data, never silence. Bad input is rejected with an error
naming the field and writes nothing. Each scenario records a row of the campaign
table (docs/reliability.md via `make chaos`). Scenarios marked xfail(strict) are
exporter bugs found by the campaign: they flip to failures once fixed.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pytest
from botocore.exceptions import ClientError

from exporter import api_client
from exporter.api_client import AnalytiksClient
from exporter.aws import S3Store, SnsPublisher, SqsQueue
from exporter.errors import ConfigError
from local.chaos import (
    CampaignRow,
    Reply,
    Request,
    Responder,
    ScriptedApi,
    TlsServer,
    find_secrets,
)
from local.chaos import record as rec
from local.chaos import v3_pages as pages
from local.harness import DrainReport, FakeContext, Killed, drain
from tests.chaos.conftest import SIZE
from tests.integration.conftest import CLIENT_SECRET, Lab
from tests.integration.test_bad_input import CASES as BAD_EVENT_CASES
from tests.integration.test_export import assert_table_matches

FULL = SIZE == "full"
BRAND = 1234
FIRST, LAST = date(2023, 6, 1), (date(2023, 6, 14) if FULL else date(2023, 6, 7))
EVENT = {"brandId": BRAND, "startDate": FIRST.isoformat(), "endDate": LAST.isoformat()}
LOCATIONS, PAGE_SIZE = (30, 5) if FULL else (12, 4)
MARGIN_MS = 2_000
HOP = MARGIN_MS + 1  # an invocation walks one page, then checkpoints
SHORT = 2_500  # a few pages; a dead holder's commit lease expires within ~2.5 s
REDELIVERY_S = 0.6  # visibility timeout, compressed
BIG = 30_000  # a whole window in one invocation
DATA, STATE = "wifi/metrics/", "wifi/_exports/"
# Small timeouts and backoff keep the campaign fast; the retry logic is the real one.
FAST_POLICY: dict[str, Any] = {
    "max_attempts": 5,
    "base_delay_s": 0.05,
    "max_delay_s": 0.4,
    "max_retry_after_s": 2.0,
    "connect_timeout_s": 1.0,
    "read_timeout_s": 1.0,
}
Campaign = list[CampaignRow]


# -- running and judging -------------------------------------------------------------


@dataclass
class Probe:
    """Watches every invocation: did it return before its deadline?"""

    invocations: int = 0
    overruns: int = 0
    min_left_ms: int = 10**9
    events: list[dict[str, Any]] = field(default_factory=list)

    def handler(self) -> Callable[[dict[str, Any], Any], Any]:
        import app  # noqa: PLC0415

        def handle(event: dict[str, Any], context: FakeContext) -> Any:
            self.invocations += 1
            self.events.append(event)
            try:
                return app.handler(event, context)
            finally:
                left = context.get_remaining_time_in_millis()
                self.min_left_ms = min(self.min_left_ms, left)
                self.overruns += left <= 0

        return handle


@dataclass
class Run:
    lab: Lab
    response: Any
    report: DrainReport
    probe: Probe
    baseline: dict[str, str]
    notes_before: int


def data_etags(lab: Lab) -> dict[str, str]:
    return {k: lab.s3.head_object(Bucket=lab.bucket, Key=k)["ETag"] for k in lab.list_keys(DATA)}


def execute(
    lab: Lab,
    event: dict[str, Any],
    *,
    budget_ms: int = BIG,
    arm: Callable[[], None] | None = None,
    **drain_kwargs: Any,
) -> Run:
    """Invoke like a direct caller, arm the faults, then let the queue finish the work."""
    probe = Probe()
    baseline = data_etags(lab)
    before = len(lab.notifications())
    response = probe.handler()(event, FakeContext(budget_ms))
    if arm:
        arm()
    report = drain(probe.handler(), lab.sqs, lab.queue_url, budget_ms=budget_ms, **drain_kwargs)
    return Run(lab, response, report, probe, baseline, before)


def queue_depth(lab: Lab, url: str) -> int:
    attrs = lab.sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attrs.values())


def assert_keys_confined(lab: Lab) -> None:
    keys = lab.list_keys()
    stray = [k for k in keys if not k.startswith((DATA, STATE)) or ".." in k or "//" in k]
    assert not stray, f"keys outside the prefixes: {stray[:3]}"


def settle(
    run: Run,
    row: CampaignRow,
    expect: str,
    *,
    brand: int = BRAND,
    first: date = FIRST,
    last: date = LAST,
    api_calls: int | None = None,
    check_rows: bool = True,
) -> dict[str, Any]:
    """Judge a run against the campaign's invariant and fill its row."""
    lab = run.lab
    notes = lab.notifications()[run.notes_before :]
    row.notifications = len(notes)
    row.invocations = run.probe.invocations
    row.redeliveries = run.report.failed_records + run.report.crashed_invocations
    row.api_calls = lab.api.stats.calls["/wifi/json/v3"] if api_calls is None else api_calls
    statuses = [n["body"]["status"] for n in notes]
    row.outcome = "+".join(statuses) or "silence"
    assert len(notes) == 1, f"expected one notification, got {statuses}"
    body = notes[0]["body"]
    assert notes[0]["attributes"]["status"] == body["status"]
    if body["status"] == "succeeded":
        row.retries = str(body["api"]["retries"])
        row.detail = f"{body['totals']['rows']} rows, {body['totals']['objects']} objects"
        if check_rows:
            rows = assert_table_matches(lab, brand, first, last, "utc")
            assert body["totals"]["rows"] == len(rows)
    else:
        row.detail = body["error"]
        assert data_etags(lab) == run.baseline, "a failed run changed the table"
    assert expect in ("either", body["status"]), f"expected {expect}, got {body['status']}"
    assert_keys_confined(lab)
    assert run.probe.overruns == 0, f"{run.probe.overruns} invocation(s) ran past the deadline"
    assert queue_depth(lab, lab.queue_url) == 0, "messages left in the queue"
    assert queue_depth(lab, lab.dlq_url) == 0, "messages in the DLQ"
    return notes[0]


@contextlib.contextmanager
def scenario(campaign: Campaign, group: str, case: str, expected: str) -> Iterator[CampaignRow]:
    row = CampaignRow(group, case, expected)
    campaign.append(row)
    started = time.monotonic()
    try:
        yield row
    except AssertionError as exc:
        row.outcome = f"VIOLATION ({row.outcome})"
        row.detail = str(exc).splitlines()[0][:110]
        raise
    finally:
        row.seconds = time.monotonic() - started


def client_error(code: str, operation: str, status: int = 503) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": f"injected {code}"},
            "ResponseMetadata": {"HTTPStatusCode": status},  # type: ignore[typeddict-item]
        },
        operation,
    )


Decide = Callable[[int, tuple[Any, ...]], BaseException | None]


def inject(
    monkeypatch: pytest.MonkeyPatch, cls: type, name: str, decide: Decide, *, after: bool = False
) -> dict[str, int]:
    """Wrap `cls.name`: `decide(call number, args)` returns what to raise (before or after)."""
    original = getattr(cls, name)
    state = {"calls": 0, "raised": 0}

    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        state["calls"] += 1
        exc = decide(state["calls"], args)
        if exc is not None and not after:
            state["raised"] += 1
            raise exc
        result = original(self, *args, **kwargs)
        if exc is not None:
            state["raised"] += 1
            raise exc
        return result

    monkeypatch.setattr(cls, name, wrapper)
    return state


def nth(n: int, exc: Callable[[], BaseException], where: str = "") -> Decide:
    """Raise on the n-th call whose first argument contains `where`."""
    seen = {"n": 0}

    def decide(_calls: int, args: tuple[Any, ...]) -> BaseException | None:
        if where and not (args and where in str(args[0])):
            return None
        seen["n"] += 1
        return exc() if seen["n"] == n else None

    return decide


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        api_client, "RetryPolicy", functools.partial(api_client.RetryPolicy, **FAST_POLICY)
    )


@pytest.fixture
def chaos_lab(make_lab: Callable[..., Lab]) -> Lab:
    lab = make_lab(brands={BRAND: LOCATIONS, 777: 3}, page_size=PAGE_SIZE)
    lab.configure(TIME_SAFETY_MARGIN_MS=str(MARGIN_MS), MAX_RECEIVE_COUNT="5")
    return lab


# -- faults of the analytiks API ------------------------------------------------------


def _faults(**knobs: Any) -> Callable[[Lab], None]:
    def apply(lab: Lab) -> None:
        for name, value in knobs.items():
            if name in ("queue", "token_queue"):
                getattr(lab.api.faults, name).extend(value)
            else:
                setattr(lab.api.faults, name, value)

    return apply


API_FAULTS: list[tuple[str, Callable[[Lab], None], int, str, dict[str, str]]] = [
    ("429 storm x7, Retry-After: 0 (outlasts one fetch's 5 attempts)",
     _faults(queue=["429"] * 7, retry_after=0), BIG, "succeeded", {}),
    ("429 x3 with Retry-After: 1", _faults(queue=["429"] * 3, retry_after=1), BIG, "succeeded", {}),
    ("500, 502, 503, 500", _faults(queue=["500", "502", "503", "500"]), BIG, "succeeded", {}),
    ("connection reset on 30% of calls", _faults(rate_reset=0.3), BIG, "succeeded", {}),
    ("truncated body on 30% of calls", _faults(rate_truncate=0.3), BIG, "succeeded", {}),
    ("2 responses slower than the 1 s read timeout",
     _faults(queue=["slow", "slow"], slow_seconds=1.5), BIG, "succeeded", {}),
    ("token revoked after every 2 pages (401 mid-run)", _faults(revoke_after=2), BIG,
     "succeeded", {}),
    ("token endpoint: 500, 503, reset, 429, truncate",
     _faults(token_queue=["500", "503", "reset", "429", "truncate"], retry_after=0), BIG,
     "succeeded", {}),
    ("mixed 10% 429 / 10% 5xx / 5% reset / 5% truncate, one page per invocation",
     _faults(rate_429=0.1, rate_5xx=0.1, rate_reset=0.05, rate_truncate=0.05, retry_after=0),
     HOP, "succeeded", {}),
    ("token endpoint rejects the credentials (401)", _faults(token_queue=["401"]), BIG,
     "failed", {}),
    ("API answers 400 (permanent)", _faults(queue=["400"]), BIG, "failed", {}),
    ("5xx forever (API down), MAX_RECEIVE_COUNT=3", _faults(rate_5xx=1.0), SHORT, "failed",
     {"MAX_RECEIVE_COUNT": "3"}),
    (f"429 forever with Retry-After: 1, {SHORT / 1000:g} s invocations, MAX_RECEIVE_COUNT=3",
     _faults(rate_429=1.0, retry_after=1), SHORT, "failed", {"MAX_RECEIVE_COUNT": "3"}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "setup", "budget", "expect", "env"), API_FAULTS, ids=[c[0] for c in API_FAULTS]
)
def test_api_faults(
    chaos_lab: Lab,
    campaign: Campaign,
    case: str,
    setup: Callable[[Lab], None],
    budget: int,
    expect: str,
    env: dict[str, str],
) -> None:
    lab = chaos_lab
    if env:
        lab.configure(**env)
    with scenario(campaign, "API faults", case, expect) as row:
        run = execute(lab, EVENT, budget_ms=budget, arm=lambda: setup(lab))
        settle(run, row, expect)
        stats = lab.api.stats
        faults = sum(stats.faults.values()) + sum(stats.token_faults.values())
        row.detail = f"{faults} faults injected, {stats.tokens_issued} tokens; {row.detail}"
        # Bounded: at most max_attempts requests per page fetch, every invocation in time.
        assert stats.calls["/wifi/json/v3"] <= FAST_POLICY["max_attempts"] * (
            run.probe.invocations + stats.pages_served
        )
        if "revoked" in case:
            assert stats.tokens_issued > 1


# -- faults of AWS ----------------------------------------------------------------------


def _random_throttle(rng: random.Random, rate: float) -> Decide:
    def decide(_calls: int, _args: tuple[Any, ...]) -> BaseException | None:
        return client_error("SlowDown", "S3") if rng.random() < rate else None

    return decide


_THROTTLE_RNG = random.Random(11)


AWS_FAULTS: list[tuple[str, list[tuple[type, str, Decide]], int, str]] = [
    ("S3 PutObject SlowDown on the first 2 staged parts",
     [(S3Store, "put", nth(1, lambda: client_error("SlowDown", "PutObject"), "/staged/")),
      (S3Store, "put", nth(2, lambda: client_error("SlowDown", "PutObject"), "/staged/"))],
     BIG, "succeeded"),
    ("S3 conditional put InternalError on the first step record",
     [(S3Store, "put_if_absent", nth(1, lambda: client_error("InternalError", "PutObject", 500),
                                     "/steps/"))], BIG, "succeeded"),
    ("S3 CopyObject InternalError during commit (lease held, then taken over)",
     [(S3Store, "copy", nth(2, lambda: client_error("InternalError", "CopyObject", 500)))],
     SHORT, "succeeded"),
    ("S3 GetObject SlowDown reading a step record",
     [(S3Store, "get", nth(1, lambda: client_error("SlowDown", "GetObject"), "/steps/"))],
     HOP, "succeeded"),
    ("SNS Publish fails once", [(SnsPublisher, "publish",
      nth(1, lambda: client_error("InternalError", "Publish", 500)))], SHORT, "succeeded"),
    ("SQS SendMessageBatch fails for a follow-up step",
     [(SqsQueue, "send", nth(2, lambda: client_error("ServiceUnavailable", "SendMessageBatch")))],
     HOP, "succeeded"),
    ("10% of all S3 writes and reads throttled (seeded)",
     [(S3Store, m, _random_throttle(_THROTTLE_RNG, 0.1))
      for m in ("put", "put_if_absent", "get", "exists", "copy")], SHORT, "either"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "patches", "budget", "expect"), AWS_FAULTS, ids=[c[0] for c in AWS_FAULTS]
)
def test_aws_faults(
    chaos_lab: Lab,
    campaign: Campaign,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    patches: list[tuple[type, str, Decide]],
    budget: int,
    expect: str,
) -> None:
    states: list[dict[str, int]] = []

    def arm() -> None:
        states.extend(inject(monkeypatch, cls, name, decide) for cls, name, decide in patches)

    with scenario(campaign, "AWS faults", case, expect) as row:
        run = execute(chaos_lab, EVENT, budget_ms=budget, arm=arm, redelivery_delay_s=REDELIVERY_S)
        settle(run, row, expect)
        raised = sum(s["raised"] for s in states)
        row.detail = f"{raised} AWS errors injected; {row.detail}"
        assert raised >= 1


def test_sqs_send_fails_while_fanning_out(
    chaos_lab: Lab, campaign: Campaign, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The direct caller is told; nothing is written under the data prefix."""
    lab = chaos_lab
    expect = "failed + error to the caller"
    with scenario(campaign, "AWS faults", "SQS send fails while an on-demand run fans out",
                  expect) as row:  # fmt: skip
        inject(
            monkeypatch, SqsQueue, "send", lambda n, a: client_error("ServiceUnavailable", "Send")
        )
        with pytest.raises(ClientError):
            Probe().handler()(EVENT, FakeContext(BIG))
        monkeypatch.undo()
        row.outcome = "failed + error to the caller"
        row.detail = "invoke raised ClientError; the run was failed with one notification"
        assert lab.list_keys(DATA) == []
        notes = lab.notifications()
        assert [n["body"]["status"] for n in notes] == ["failed"]
        assert "enqueue" in notes[0]["body"]["error"]
        assert queue_depth(lab, lab.queue_url) == 0
        row.invocations = 1


# -- invocations killed -------------------------------------------------------------------

KILLS: list[Any] = [
    ("between pages (fetching page 2)", AnalytiksClient, "fetch_v3", 2, "", False, BIG),
    ("after flushing the first staged part", S3Store, "put", 1, "/staged/", True, BIG),
    ("after the step record, before the follow-up", S3Store, "put_if_absent", 1, "/steps/", True,
     HOP),
    ("between SQS send and its 'enqueued' marker", SqsQueue, "send", 1, "", True, HOP),
    ("during commit (3rd partition copy)", S3Store, "copy", 3, "", False, SHORT),
    ("during commit (replacing older objects)", S3Store, "put", 1, "manifest.json", False, SHORT),
    ("after commit, before the notification", SnsPublisher, "publish", 1, "", False, SHORT),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "cls", "name", "n", "where", "after", "budget"),
    KILLS,
    ids=[(k.values if hasattr(k, "values") else k)[0] for k in KILLS],
)
def test_killed(
    chaos_lab: Lab,
    campaign: Campaign,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    cls: type,
    name: str,
    n: int,
    where: str,
    after: bool,
    budget: int,
) -> None:
    states: list[dict[str, int]] = []

    def arm() -> None:
        states.append(inject(monkeypatch, cls, name, nth(n, Killed, where), after=after))

    with scenario(campaign, "Killed", case, "succeeded") as row:
        run = execute(chaos_lab, EVENT, budget_ms=budget, arm=arm, redelivery_delay_s=REDELIVERY_S)
        settle(run, row, "succeeded")
        assert states[0]["raised"] == 1 and run.report.crashed_invocations == 1


def test_killed_between_publish_and_marker_repeats_the_same_notification(
    chaos_lab: Lab, campaign: Campaign, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one documented exception to "one notification": SNS standard topics have
    no idempotent publish, so a kill in the instant between publishing and writing the
    'notified' marker repeats the notification, with the same runId (docs/reliability.md)."""
    states: list[dict[str, int]] = []

    def arm() -> None:
        states.append(
            inject(monkeypatch, S3Store, "put_if_absent", nth(1, Killed, "notified.json"))
        )

    case = "after the notification, before the 'notified' marker"
    with scenario(campaign, "Killed", case, "succeeded, notification repeated") as row:
        run = execute(chaos_lab, EVENT, budget_ms=SHORT, arm=arm, redelivery_delay_s=REDELIVERY_S)
        notes = chaos_lab.notifications()[run.notes_before :]
        row.notifications = len(notes)
        row.invocations = run.probe.invocations
        row.outcome = "+".join(n["body"]["status"] for n in notes)
        row.detail = "same runId twice: subscribers dedupe on runId"
        assert states[0]["raised"] == 1
        assert [n["body"]["status"] for n in notes] == ["succeeded", "succeeded"]
        assert notes[0]["body"]["runId"] == notes[1]["body"]["runId"]
        assert notes[0]["body"]["totals"] == notes[1]["body"]["totals"]
        assert_table_matches(chaos_lab, BRAND, FIRST, LAST, "utc")


KILL_TARGETS: list[tuple[type, str]] = [
    (S3Store, "put"),
    (S3Store, "put_if_absent"),
    (S3Store, "get"),
    (S3Store, "exists"),
    (S3Store, "list_keys"),
    (S3Store, "copy"),
    (SqsQueue, "send"),
    (SnsPublisher, "publish"),
    (AnalytiksClient, "fetch_v3"),
]
SEEDS = list(range(24)) if FULL else [1, 2, 3]


@pytest.mark.parametrize("seed", SEEDS)
def test_killed_at_random(
    chaos_lab: Lab, campaign: Campaign, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    rng = random.Random(seed)
    cls, name = rng.choice(KILL_TARGETS)
    n, after = rng.randint(1, 12), rng.random() < 0.5
    budget = rng.choice([HOP, SHORT])
    states: list[dict[str, int]] = []

    def arm() -> None:
        states.append(inject(monkeypatch, cls, name, nth(n, Killed), after=after))

    case = (
        f"seed {seed}: {cls.__name__}.{name} call {n} ({'after' if after else 'before'}), "
        f"{budget} ms invocations"
    )
    with scenario(campaign, "Killed (random)", case, "succeeded") as row:
        run = execute(chaos_lab, EVENT, budget_ms=budget, arm=arm, redelivery_delay_s=REDELIVERY_S)
        settle(run, row, "succeeded")
        row.detail = f"{'killed' if states[0]['raised'] else 'never reached'}; {row.detail}"


# -- SQS delivery ---------------------------------------------------------------------------

DELIVERY: list[tuple[str, dict[str, Any]]] = [
    ("every message delivered twice", {"duplicate": True}),
    ("batches of 10 shuffled and duplicated", {"duplicate": True, "shuffle": random.Random(7)}),
    ("every 3rd invocation dies before it starts; redelivered after 0.2 s",
     {"crash": lambda n: n % 3 == 0, "redelivery_delay_s": 0.2}),
]  # fmt: skip


@pytest.mark.parametrize(("case", "kwargs"), DELIVERY, ids=[d[0] for d in DELIVERY])
def test_delivery(chaos_lab: Lab, campaign: Campaign, case: str, kwargs: dict[str, Any]) -> None:
    with scenario(campaign, "SQS delivery", case, "succeeded") as row:
        run = execute(chaos_lab, EVENT, budget_ms=HOP, **kwargs)
        settle(run, row, "succeeded")
        row.redeliveries += run.report.duplicates_delivered


# -- bad input: events and checkpoint messages ---------------------------------------------

FULLWIDTH_DAY = "\uff12\uff10\uff12\uff13-\uff10\uff16-\uff10\uff18"  # Unicode digits
EXTRA_BAD_EVENTS: list[tuple[dict[str, Any], str]] = [
    ({"brandId": 0, "startDate": "2023-06-08", "endDate": "2023-06-09"}, "brandId"),
    ({"brandId": 2**63, "startDate": "2023-06-08", "endDate": "2023-06-09"}, "brandId"),
    ({"brandId": None, "startDate": "2023-06-08", "endDate": "2023-06-09"}, "brandId"),
    ({"brandId": "../../x", "startDate": "2023-06-08", "endDate": "2023-06-09"}, "brandId"),
    ({"brandIds": [1234, 1234], "startDate": "2023-06-08", "endDate": "2023-06-09"}, "brandIds"),
    ({"brandIds": "1234", "startDate": "2023-06-08", "endDate": "2023-06-09"}, "brandIds"),
    ({"brandId": 1234, "startDate": 20230608, "endDate": "2023-06-09"}, "startDate"),
    ({"brandId": 1234, "startDate": FULLWIDTH_DAY, "endDate": "2023-06-09"}, "startDate"),
    ({"brandId": 1234, "startDate": "2023-06-08T24:00:00Z", "endDate": "2023-06-09T00:00:00Z"},
     "startDate"),
    ({"brandId": 1234, "startDate": "2023-06-08T00:00:00.1234567891Z",
      "endDate": "2023-06-09T00:00:00Z"}, "startDate"),
    ({"brandId": 1234, "startDate": "0001-01-01", "endDate": "0001-01-02"}, "startDate"),
    ({"brandId": 1234, "startDate": "99999-01-01", "endDate": "99999-01-02"}, "startDate"),
    ({"brandId": 1234, "startDate": "2023-06-08T00:00:00Z", "endDate": "2023-06-09T00:00:00Z",
      "timeBasis": "local"}, "timeBasis"),
    ({"brandId": 1234, "startDate": "2023-06-08", "endDate": "2023-07-20"}, "MAX_RANGE_DAYS"),
    ({"Records": []}, "Records"),
    ({"Records": [{"eventSource": "aws:s3", "body": "{}"}]}, "Records"),
    ({"detail-type": "Scheduled Event", "time": "yesterday"}, "time"),
]  # fmt: skip


def test_bad_events(chaos_lab: Lab, campaign: Campaign) -> None:
    lab = chaos_lab
    lab.configure(MAX_RANGE_DAYS="31")
    violations: list[str] = []
    for event, named in [*BAD_EVENT_CASES, *EXTRA_BAD_EVENTS]:
        case = json.dumps(event, ensure_ascii=False)
        with scenario(campaign, "Bad events", case, f"rejected, names {named}") as row:
            probe = Probe()
            response = probe.handler()(event, FakeContext(BIG))  # type: ignore[arg-type]
            row.invocations = probe.invocations
            message = str(response.get("message", "")) if isinstance(response, dict) else ""
            row.detail = message
            row.outcome = "rejected" if response.get("error") == "InvalidEvent" else "ACCEPTED"
            problems = [
                p
                for p, bad in (
                    ("not rejected", row.outcome != "rejected"),
                    (f"does not name {named}", named not in message),
                    ("wrote to S3", lab.list_keys() != []),
                    ("queued work", queue_depth(lab, lab.queue_url) != 0),
                    ("notified", lab.notifications() != []),
                )
                if bad
            ]
            if problems:
                row.outcome = f"VIOLATION ({', '.join(problems)})"
                violations.append(f"{case}: {problems}")
    assert not violations, violations


RUN_ID = "20230601T000000000Z-b1234-deadbeef"
BAD_MESSAGES: list[tuple[str, str]] = [
    ("not JSON", "not json"),
    ("a JSON list", "[1, 2]"),
    ("unknown version", json.dumps({"v": 2, "runId": RUN_ID})),
    ("unknown field", json.dumps({"v": 1, "runId": RUN_ID, "brandId": 1234, "window": 0,
                                  "step": 0, "cursor": None, "admin": True})),
    ("path-traversal run id", json.dumps({"v": 1, "runId": "../../x", "brandId": 1234,
                                          "window": 0, "step": 0, "cursor": None})),
    ("run id with a slash", json.dumps({"v": 1, "runId": RUN_ID + "/../../evil", "brandId": 1234,
                                        "window": 0, "step": 0, "cursor": None})),
    ("negative step", json.dumps({"v": 1, "runId": RUN_ID, "brandId": 1234, "window": 0,
                                  "step": -1, "cursor": None})),
    ("cursor longer than 8192", json.dumps({"v": 1, "runId": RUN_ID, "brandId": 1234,
                                            "window": 0, "step": 0, "cursor": "c" * 10_000})),
    ("unknown run id", json.dumps({"v": 1, "runId": RUN_ID, "brandId": 1234, "window": 0,
                                   "step": 0, "cursor": None})),
    ("negative totals", json.dumps({"v": 1, "runId": RUN_ID, "brandId": 1234, "window": 0,
                                    "step": 0, "cursor": None, "totals": {"rows": -5}})),
]  # fmt: skip


def test_bad_checkpoint_messages(chaos_lab: Lab, campaign: Campaign) -> None:
    """Foreign or tampered queue messages: rejected in one delivery, nothing written, no notice.

    Also forged messages naming a real, finished run (wrong brand, window out of range)."""
    lab = chaos_lab
    run = execute(lab, EVENT, budget_ms=BIG)
    real = run.response["runs"][0]["runId"]
    settle(run, CampaignRow("", "", ""), "succeeded")
    messages = [
        *BAD_MESSAGES,
        ("real run, another brand", json.dumps({"v": 1, "runId": real, "brandId": 777,
                                                "window": 0, "step": 0, "cursor": None})),
        ("real run, window out of range", json.dumps({"v": 1, "runId": real, "brandId": BRAND,
                                                      "window": 99, "step": 0, "cursor": None})),
    ]  # fmt: skip
    violations: list[str] = []
    for case, body in messages:
        with scenario(campaign, "Bad checkpoints", case, "rejected once, nothing written") as row:
            before_keys, before_data = set(lab.list_keys()), data_etags(lab)
            lab.sqs.send_message(QueueUrl=lab.queue_url, MessageBody=body)
            report = drain(Probe().handler(), lab.sqs, lab.queue_url, budget_ms=BIG)
            row.invocations, row.redeliveries = report.invocations, report.failed_records
            new_keys = sorted(set(lab.list_keys()) - before_keys)
            row.notifications = len(lab.notifications()) - 1
            ok = (
                report.invocations == 1
                and report.failed_records == 0
                and not new_keys
                and data_etags(lab) == before_data
                and row.notifications == 0
            )
            row.outcome = "rejected" if ok else "VIOLATION"
            row.detail = f"new keys {new_keys[:2]}" if new_keys else "dropped, logged"
            if not ok:
                violations.append(f"{case}: {row}")
    assert not violations, violations


# -- broken API responses (scripted server) -----------------------------------------------

DAY = "2023-06-01"
ONE_DAY = {"brandId": BRAND, "startDate": DAY, "endDate": DAY}


def _page(*records: Any, cursor: Any = None) -> dict[str, Any]:
    return {"data": list(records), "cursor": cursor}


GOOD = rec(123400001, reference="REF-1")
BROKEN: list[tuple[str, dict[str | None, Any], str]] = [
    ("200 with an HTML body", {None: b"<html>502 Bad Gateway</html>"}, "invalid JSON"),
    ("200 with an empty body", {None: b""}, "invalid JSON"),
    ("answer is a JSON list", {None: [GOOD]}, "'data'"),
    ("'data' missing", {None: {"cursor": None}}, "'data'"),
    ("'data' is an object", {None: {"data": {"a": 1}, "cursor": None}}, "'data'"),
    ("a data item is a string", {None: _page("x")}, "not an object"),
    ("locationId is a string", {None: _page({**GOOD, "locationId": "123400001"})}, "locationId"),
    ("locationId is negative", {None: _page({**GOOD, "locationId": -1})}, "locationId"),
    ("negative metric value", {None: _page(rec(123400001, metrics={"visits": -3}))},
     "natural number"),
    ("fractional metric value",
     {None: _page({"locationId": 1, "visits": {f"{DAY}T00:00:00Z": 1.5}})}, "natural number"),
    ("metric value is a string",
     {None: _page({"locationId": 1, "visits": {f"{DAY}T00:00:00Z": "7"}})},
     "natural number"),
    ("metric value beyond 64 bits",
     {None: b'{"data":[{"locationId":1,"visits":{"2023-06-01T00:00:00Z":1180591620717411303424}}],'
            b'"cursor":null}'}, "natural number"),
    ("metric series is a list", {None: _page({"locationId": 1, "visits": [1, 2]})}, "not a map"),
    ("unparseable timestamp", {None: _page({"locationId": 1, "visits": {"yesterday 5pm": 1}})},
     "ISO 8601"),
    ("timestamp with +02:00 in a UTC request",
     {None: _page({"locationId": 1, "visits": {f"{DAY}T10:00:00+02:00": 1}})}, "not UTC"),
    ("impossible time 25:00", {None: _page({"locationId": 1, "visits": {f"{DAY}T25:00:00Z": 1}})},
     "valid time"),
    ("cursor repeats itself", {None: _page(GOOD, cursor="A"), "A": _page(GOOD, cursor="A")},
     "repeats"),
    ("cursor is a number", {None: _page(GOOD, cursor=5)}, "cursor"),
    ("cursor is an empty string", {None: _page(GOOD, cursor="")}, "cursor"),
    ("cursor longer than 8192", {None: _page(GOOD, cursor="c" * 9000)}, "8192"),
]  # fmt: skip


def _scripted(lab: Lab, api: ScriptedApi) -> None:
    lab.configure(API_URL=api.url, TOKEN_URL=api.token_url)


def test_broken_api_responses(chaos_lab: Lab, campaign: Campaign) -> None:
    lab = chaos_lab
    violations: list[str] = []
    for case, script, mention in BROKEN:
        with ScriptedApi(pages(script)) as api:
            _scripted(lab, api)
            try:
                with scenario(campaign, "Broken API responses", case, "failed") as row:
                    run = execute(lab, ONE_DAY, budget_ms=BIG)
                    settle(run, row, "failed", api_calls=api.calls["/wifi/json/v3"])
                    assert mention in row.detail, f"error does not mention {mention!r}"
                    assert run.report.failed_records == 0, "a permanent error was redelivered"
            except AssertionError as exc:
                violations.append(f"{case}: {exc}")
    assert not violations, violations


TOKEN_BROKEN: list[tuple[str, Reply, str]] = [
    ("token endpoint: 200 with HTML", Reply(200, b"<html>hi</html>"), "invalid JSON"),
    ("token endpoint: no access_token", Reply.json({"token_type": "Bearer"}), "access_token"),
    ("token endpoint: expires_in is text", Reply.json({"access_token": "t", "expires_in": "x"}),
     "expires_in"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "reply", "mention"), TOKEN_BROKEN, ids=[t[0] for t in TOKEN_BROKEN]
)
def test_broken_token_endpoint(
    chaos_lab: Lab, campaign: Campaign, case: str, reply: Reply, mention: str
) -> None:
    with (
        ScriptedApi(pages({None: _page(GOOD)}), token=lambda _r: reply) as api,
        scenario(campaign, "Broken API responses", case, "failed") as row,
    ):
        _scripted(chaos_lab, api)
        run = execute(chaos_lab, ONE_DAY, budget_ms=BIG)
        settle(run, row, "failed", api_calls=api.calls["/oauth/token"])
        assert mention in row.detail


@pytest.mark.parametrize("kind", ["cycle A→B→A", "endless fresh cursors"])
def test_looping_cursor_across_invocations(chaos_lab: Lab, campaign: Campaign, kind: str) -> None:
    """One page per invocation. A cycle spanning checkpoints returns locations again and is
    stopped there; endless fresh cursors with fresh locations are stopped by MAX_HOPS."""
    lab = chaos_lab
    lab.configure(MAX_HOPS="6")

    def endless(request: Request) -> Reply:
        n = len(api.requests)
        return Reply.json(_page(rec(123400000 + n, reference=f"REF-{n}"), cursor=f"c{n}"))

    script = pages({None: _page(GOOD, cursor="A"), "A": _page(rec(123400002), cursor="B"),
                    "B": _page(rec(123400003), cursor="A")})  # fmt: skip
    cycle = kind.startswith("cycle")
    with (
        ScriptedApi(script if cycle else endless) as api,
        scenario(campaign, "Broken API responses", f"{kind}, one page per invocation, MAX_HOPS=6",
                 "failed") as row,
    ):  # fmt: skip
        _scripted(lab, api)
        run = execute(lab, ONE_DAY, budget_ms=HOP)
        settle(run, row, "failed", api_calls=api.calls["/wifi/json/v3"])
        assert ("twice in one window" if cycle else "MAX_HOPS") in row.detail


def test_hostile_strings_cannot_steer_keys(chaos_lab: Lab, campaign: Campaign) -> None:
    """referenceNumber, zoneId, metric names and cursors full of ../ and / stay data."""
    lab = chaos_lab
    evil = "../../../../wifi/metrics/brand_id=1/dt=2023-06-01/x"
    script = pages(
        {
            None: _page(
                rec(123400001, reference=evil, zone="../zone/..", metrics={"visits": 1, evil: 2}),
                cursor="../../" + evil,
            ),
            "../../" + evil: _page(
                rec(123400002, reference="/etc/passwd", zone="a/b"),
                rec(123400003, day="2023-06-02", reference="/etc/passwd"),  # outside the run
                cursor="%2F..%2F..%2Fx/",
            ),
            "%2F..%2F..%2Fx/": _page(),
        }
    )
    with (
        ScriptedApi(script) as api,
        scenario(campaign, "Key confinement", "'../' and '/' in referenceNumber, zoneId, "
                 "metric name and cursor", "succeeded") as row,
    ):  # fmt: skip
        _scripted(lab, api)
        run = execute(lab, ONE_DAY, budget_ms=HOP)
        settle(run, row, "succeeded", api_calls=api.calls["/wifi/json/v3"], check_rows=False)
        rows = lab.rows(BRAND)
        assert len(rows) == 48
        assert {r["reference_number"] for r in rows.values()} == {evil, "/etc/passwd"}
        assert any((r["extra"] or {}).get(evil) == 2 for r in rows.values())
        keys = lab.list_keys()
        assert all("passwd" not in k and "zone" not in k for k in keys)
        assert not any("dt=2023-06-02" in k for k in keys)


# -- security ---------------------------------------------------------------------------


def _everything(lab: Lab, probe_events: list[dict[str, Any]]) -> list[tuple[str, bytes]]:
    blobs = [
        (f"s3://{k}", lab.s3.get_object(Bucket=lab.bucket, Key=k)["Body"].read())
        for k in lab.list_keys()
    ]
    blobs += [
        (f"notification {n}", json.dumps(x).encode()) for n, x in enumerate(lab.notifications())
    ]
    blobs += [(f"sqs event {n}", json.dumps(e).encode()) for n, e in enumerate(probe_events)]
    return blobs


def test_no_secret_or_token_leaks(
    make_lab: Callable[..., Lab],
    campaign: Campaign,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DEBUG logging, many tokens (revoked after each page), retries and a failed run:
    neither the client secret nor any issued token shows up anywhere we can look."""
    from exporter.observability import logger  # noqa: PLC0415

    lab = make_lab(brands={BRAND: 8, 999: 3}, page_size=4, allowed_brands=[BRAND])
    lab.configure(TIME_SAFETY_MARGIN_MS=str(MARGIN_MS), POWERTOOLS_LOG_LEVEL="DEBUG")
    logger.setLevel("DEBUG")
    caplog.set_level(logging.DEBUG, logger="wifi-export")
    lab.api.faults.revoke_after = 1
    lab.api.faults.queue.extend(["429", "500", "reset"])
    lab.api.faults.retry_after = 0
    with scenario(campaign, "Security", "secrets and tokens in logs (DEBUG), errors, "
                  "notifications, S3, SQS", "no leak") as row:  # fmt: skip
        try:
            run = execute(lab, {"brandIds": [BRAND, 999], "startDate": DAY, "endDate": DAY},
                          budget_ms=HOP)  # fmt: skip
        finally:
            logger.setLevel("INFO")
        out, err = capfd.readouterr()
        tokens = list(lab.api._tokens)
        blobs = _everything(lab, run.probe.events)
        blobs += [("stdout", out.encode()), ("stderr", err.encode())]
        blobs += [(f"log {r.name}", r.getMessage().encode()) for r in caplog.records]
        blobs += [("responses", json.dumps(run.report.responses, default=str).encode())]
        statuses = sorted(n["body"]["status"] for n in lab.notifications())
        row.outcome = "+".join(statuses)
        row.notifications, row.invocations = len(statuses), run.probe.invocations
        row.api_calls = lab.api.stats.calls["/wifi/json/v3"]
        leaks = find_secrets(blobs, [CLIENT_SECRET, *tokens])
        row.detail = f"{len(tokens)} tokens + the secret searched in {len(blobs)} blobs"
        assert len(tokens) >= 3
        assert statuses == ["failed", "succeeded"]
        assert not leaks, leaks
        row.outcome += ", no leak"


@pytest.mark.parametrize(
    ("variable", "url"),
    [
        ("API_URL", "http://exports.analytiks.ai"),
        ("TOKEN_URL", "http://tokens.analytiks.ai/oauth/token"),
        ("API_URL", "http://127.0.0.1.nip.io:8080"),
        ("TOKEN_URL", "http://localhost.evil.example/"),
        ("API_URL", "ftp://127.0.0.1/"),
        ("TOKEN_URL", "tokens.analytiks.ai"),
    ],
)
def test_plain_http_refused_for_remote_hosts(
    chaos_lab: Lab, campaign: Campaign, variable: str, url: str
) -> None:
    with scenario(
        campaign, "Security", f"{variable}={url}", f"config error naming {variable}"
    ) as row:
        chaos_lab.configure(**{variable: url})
        with pytest.raises(ConfigError) as error:
            chaos_lab.invoke(EVENT)
        row.outcome, row.detail, row.invocations = "config error", str(error.value), 1
        assert variable in str(error.value)
        assert chaos_lab.list_keys() == [] and chaos_lab.api.stats.data_calls == 0


def test_tls_certificates_are_verified(chaos_lab: Lab, campaign: Campaign) -> None:
    with (
        TlsServer() as server,
        scenario(campaign, "Security", "HTTPS API with a self-signed certificate on 127.0.0.1",
                 "failed, no request sent") as row,
    ):  # fmt: skip
        chaos_lab.configure(API_URL=server.url, TOKEN_URL=server.url + "/oauth/token")
        run = execute(chaos_lab, ONE_DAY, budget_ms=BIG)
        settle(run, row, "failed", api_calls=server.requests)
        assert "TLS" in row.detail
        assert server.requests == 0


# -- found by this campaign and fixed: forged checkpoints, repeated locations, Lambda
# retries of an invocation, echoed credentials ------------------------------------------


@pytest.mark.parametrize(
    ("step", "expected"),
    [(2, "ignored; run succeeds exactly once"), (200, "ignored; run succeeds (not MAX_HOPS)")],
)
def test_forged_checkpoint_for_a_running_run(
    chaos_lab: Lab, campaign: Campaign, step: int, expected: str
) -> None:
    """A step that does not continue the recorded chain is rejected: no rows twice,
    and a step number past MAX_HOPS cannot fail a healthy run."""
    lab = chaos_lab
    with scenario(campaign, "Bad checkpoint messages",
                  f"forged checkpoint {{step: {step}, cursor: null}} for a running run",
                  expected) as row:  # fmt: skip
        probe = Probe()
        response = probe.handler()(ONE_DAY, FakeContext(HOP))
        run_id = response["runs"][0]["runId"]
        forged = {"v": 1, "runId": run_id, "brandId": BRAND, "window": 0, "step": step,
                  "cursor": None}  # fmt: skip
        lab.sqs.send_message(QueueUrl=lab.queue_url, MessageBody=json.dumps(forged))
        report = drain(probe.handler(), lab.sqs, lab.queue_url, budget_ms=HOP)
        run = Run(lab, response, report, probe, {}, 0)
        settle(run, row, "succeeded", first=date(2023, 6, 1), last=date(2023, 6, 1))


def test_same_location_on_two_pages(chaos_lab: Lab, campaign: Campaign) -> None:
    lab = chaos_lab
    script = pages({None: _page(GOOD, cursor="p2"), "p2": _page(GOOD)})
    with (
        ScriptedApi(script) as api,
        scenario(campaign, "Broken API responses", "API returns the same location on two pages",
                 "failed (or each row once)") as row,
    ):  # fmt: skip
        _scripted(lab, api)
        run = execute(lab, ONE_DAY, budget_ms=BIG)
        note = settle(run, row, "either", api_calls=api.calls["/wifi/json/v3"], check_rows=False)
        if note["body"]["status"] == "succeeded":
            lab.rows(BRAND)  # fails on a duplicate (location, ts)


def test_retried_on_demand_invocation_reuses_its_run(chaos_lab: Lab, campaign: Campaign) -> None:
    with scenario(campaign, "SQS delivery", "on-demand invocation retried by Lambda (same request "
                  "id)", "same run id, one run") as row:  # fmt: skip
        import app  # noqa: PLC0415

        context = FakeContext(BIG)
        first = app.handler(ONE_DAY, context)
        time.sleep(0.01)
        second = app.handler(ONE_DAY, context)
        ids = [r["runs"][0]["runId"] for r in (first, second)]
        row.outcome = "same run" if ids[0] == ids[1] else "two runs"
        row.detail = " vs ".join(ids)
        assert ids[0] == ids[1], row.detail


Script = Callable[[ScriptedApi], Responder | None]
ECHOES: list[tuple[str, Script, Script]] = [
    ("API 400 whose message echoes the Authorization header",
     lambda api: lambda r: Reply.json(
         {"message": f"bad request with {r.headers.get('authorization')}"}, 400),
     lambda api: None),
    ("token endpoint 400 whose message echoes the request body",
     lambda api: pages({None: _page(GOOD)}),
     lambda api: lambda r: Reply.json({"message": f"invalid request {r.body.decode()}"}, 400)),
]  # fmt: skip


@pytest.mark.parametrize(("case", "v3", "token"), ECHOES, ids=[e[0] for e in ECHOES])
def test_echoed_credentials_are_redacted(
    chaos_lab: Lab,
    campaign: Campaign,
    capfd: pytest.CaptureFixture[str],
    case: str,
    v3: Callable[[ScriptedApi], Responder],
    token: Callable[[ScriptedApi], Responder | None],
) -> None:
    api = ScriptedApi(lambda r: Reply())
    api.v3, api.token = v3(api), token(api)
    with api, scenario(campaign, "Security", case, "failed, no leak") as row:
        _scripted(chaos_lab, api)
        run = execute(chaos_lab, ONE_DAY, budget_ms=BIG)
        settle(run, row, "failed", api_calls=sum(api.calls.values()))
        out, _err = capfd.readouterr()
        blobs = [*_everything(chaos_lab, run.probe.events), ("stdout", out.encode())]
        leaks = find_secrets(blobs, [CLIENT_SECRET, *api.tokens])
        assert not leaks, f"leaked: {leaks[:3]}"
