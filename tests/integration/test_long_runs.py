"""Long runs: fan-out, checkpoints through SQS, and at-least-once delivery safety."""

from __future__ import annotations

import json
import random
import threading
from datetime import date
from typing import Any

import pytest

from exporter.aws import S3Store, SnsPublisher, SqsQueue
from exporter.run import commit, finish
from local.harness import FakeContext, Killed, sqs_event
from tests.integration.conftest import Lab
from tests.integration.test_export import assert_table_matches

FIRST, LAST = date(2023, 6, 1), date(2023, 6, 23)  # 23 days: 5 windows
EVENT = {"brandId": 1234, "startDate": "2023-06-01", "endDate": "2023-06-23"}
MARGIN_MS = 8_000
ONE_PAGE_BUDGET = MARGIN_MS + 1  # every invocation does exactly one page, then checkpoints


@pytest.fixture
def long_lab(make_lab: Any) -> Lab:
    lab: Lab = make_lab(brands={1234: 40}, page_size=10)  # 4 pages a window
    lab.configure(TIME_SAFETY_MARGIN_MS=str(MARGIN_MS))
    return lab


def data_objects(lab: Lab) -> list[str]:
    return lab.list_keys("wifi/metrics/")


def assert_exactly_once(lab: Lab, notifications: int = 1) -> None:
    assert_table_matches(lab, 1234, FIRST, LAST, "utc")
    notes = lab.notifications()
    assert len(notes) == notifications, [n["subject"] for n in notes]
    assert notes[-1]["body"]["status"] == "succeeded"
    assert notes[-1]["body"]["totals"]["rows"] == len(lab.rows(1234))


def test_backfill_takes_many_hops_and_exports_exactly_once(long_lab: Lab) -> None:
    lab = long_lab
    response = lab.invoke(EVENT, budget_ms=ONE_PAGE_BUDGET)
    run_id = response["runs"][0]["runId"]
    assert len(response["runs"][0]["windows"]) == 5
    report = lab.drain(budget_ms=ONE_PAGE_BUDGET)
    assert report.invocations == 20  # 5 windows x 4 pages, one page per hop
    assert_exactly_once(lab)
    # One object per (partition, window, invocation): each hop wrote its own.
    objects = data_objects(lab)
    assert all(key.rsplit("/", 1)[-1].startswith(run_id) for key in objects)
    names = {k.rsplit("/", 1)[-1] for k in objects}
    assert len(objects) == 23 * 4  # every day gets one object from each of its window's 4 hops
    assert len(names) == 20  # ... named by (run, window, step)
    status = json.loads(
        lab.s3.get_object(Bucket=lab.bucket, Key=f"wifi/_exports/runs/{run_id}/status.json")[
            "Body"
        ].read()
    )
    assert status["state"] == "succeeded"
    assert status["windowsDone"] == status["windowsTotal"] == 5
    manifest = json.loads(
        lab.s3.get_object(Bucket=lab.bucket, Key=f"wifi/_exports/runs/{run_id}/manifest.json")[
            "Body"
        ].read()
    )
    assert manifest["steps"] == 20
    assert manifest["api"]["pages"] == 20
    assert manifest["api"]["calls"] == lab.api.stats.calls["/wifi/json/v3"]


def test_status_is_readable_while_running(long_lab: Lab) -> None:
    lab = long_lab
    run_id = lab.invoke(EVENT, budget_ms=ONE_PAGE_BUDGET)["runs"][0]["runId"]
    seen: list[dict[str, Any]] = []

    def peek(n: int, _event: dict[str, Any]) -> None:
        if n == 10:
            raw = lab.s3.get_object(
                Bucket=lab.bucket, Key=f"wifi/_exports/runs/{run_id}/status.json"
            )["Body"].read()
            seen.append(json.loads(raw))

    lab.drain(budget_ms=ONE_PAGE_BUDGET, on_invoke=peek)
    (status,) = seen
    assert status["state"] == "running"
    assert status["windowsTotal"] == 5
    assert 0 <= status["windowsDone"] < 5
    assert status["lastCheckpoint"]["at"]


def test_every_message_delivered_twice(long_lab: Lab) -> None:
    long_lab.invoke(EVENT, budget_ms=ONE_PAGE_BUDGET)
    report = long_lab.drain(budget_ms=ONE_PAGE_BUDGET, duplicate=True)
    assert report.duplicates_delivered >= 20
    assert_exactly_once(long_lab)


def test_messages_delivered_out_of_order(long_lab: Lab) -> None:
    long_lab.invoke(EVENT, budget_ms=ONE_PAGE_BUDGET)
    long_lab.drain(budget_ms=ONE_PAGE_BUDGET, shuffle=random.Random(7), duplicate=True)
    assert_exactly_once(long_lab)


def test_invocations_killed_before_they_start(long_lab: Lab) -> None:
    long_lab.invoke(EVENT, budget_ms=ONE_PAGE_BUDGET)
    report = long_lab.drain(budget_ms=ONE_PAGE_BUDGET, crash=lambda n: n % 3 == 0, crashes=None)
    assert report.crashed_invocations > 5
    assert report.crashed_invocations == report.invocations // 3
    assert_exactly_once(long_lab)


@pytest.mark.parametrize("kill_on_call", [1, 2, 5, 9])
def test_invocation_killed_after_flushing_rows(
    long_lab: Lab, monkeypatch: pytest.MonkeyPatch, kill_on_call: int
) -> None:
    """Staged objects are written, then the Lambda dies before recording the step."""
    calls = {"n": 0}
    original = S3Store.put

    def put(self: S3Store, key: str, body: bytes, content_type: str = "application/json") -> None:
        original(self, key, body, content_type)
        if "/staged/" in key:
            calls["n"] += 1
            if calls["n"] == kill_on_call:
                raise Killed

    monkeypatch.setattr(S3Store, "put", put)
    long_lab.invoke(EVENT, budget_ms=ONE_PAGE_BUDGET)
    long_lab.drain(budget_ms=ONE_PAGE_BUDGET, crashes=1)
    assert calls["n"] > kill_on_call  # killed, and the run went on past it
    assert_exactly_once(long_lab)


def test_killed_between_send_and_marker_forks_one_step_only(
    long_lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = SqsQueue.send
    calls = {"n": 0}
    killed: list[list[str]] = []

    def send(self: SqsQueue, bodies: Any) -> None:
        original(self, bodies)
        calls["n"] += 1
        if calls["n"] in (3, 8):
            killed.append(list(bodies))
            raise Killed  # sent, but the "enqueued" marker never written

    monkeypatch.setattr(SqsQueue, "send", send)
    long_lab.invoke(EVENT, budget_ms=ONE_PAGE_BUDGET)
    # Call 1 is the fan-out of the 5 windows; 3 and 8 each send one follow-up step.
    report = long_lab.drain(budget_ms=ONE_PAGE_BUDGET, crashes=2)
    assert [len(bodies) for bodies in killed] == [1, 1]
    # Each kill sends its step once more on redelivery: at most one extra invocation per
    # kill for the redelivered message and one for the duplicate step, which stops quietly.
    assert 20 + 2 <= report.invocations <= 20 + 2 * 2
    assert_exactly_once(long_lab)


@pytest.mark.parametrize("where", ["commit", "notify"])
def test_killed_while_finishing_the_run(
    long_lab: Lab, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """Killed half-way through replacing partitions, or after commit before publishing."""
    calls = {"n": 0}
    if where == "commit":
        original_copy = S3Store.copy

        def copy(self: S3Store, source: str, target: str) -> None:
            calls["n"] += 1
            if calls["n"] == 4:
                raise Killed
            original_copy(self, source, target)

        monkeypatch.setattr(S3Store, "copy", copy)
    else:
        original_publish = SnsPublisher.publish

        def publish(
            self: SnsPublisher, subject: str, message: str, attributes: dict[str, str]
        ) -> None:
            calls["n"] += 1
            if calls["n"] == 1:
                raise Killed
            original_publish(self, subject, message, attributes)

        monkeypatch.setattr(SnsPublisher, "publish", publish)
    long_lab.invoke(EVENT, budget_ms=ONE_PAGE_BUDGET)
    # The killed invocation's lease lasts until its deadline (about 8 s here): its
    # message comes back (visibility timeouts compressed to 2 s) until it can take over.
    report = long_lab.drain(budget_ms=ONE_PAGE_BUDGET, redelivery_delay_s=2.0, crashes=1)
    assert report.failed_records >= 1
    assert_exactly_once(long_lab)


def test_two_windows_finishing_together_commit_once(
    make_lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab = make_lab(brands={1234: 20}, page_size=50)
    lab.configure(WINDOW_DAYS="1", TIME_SAFETY_MARGIN_MS="2000")
    lab.invoke({"brandId": 1234, "startDate": "2023-06-01", "endDate": "2023-06-02"})
    messages = lab.sqs.receive_message(QueueUrl=lab.queue_url, MaxNumberOfMessages=10)["Messages"]
    assert len(messages) == 2
    barrier = threading.Barrier(2, timeout=30)
    original_finish = finish.finish_run
    commits = {"n": 0}
    original_commit = commit.commit_run

    racing = {"on": True}

    def finish_run(ctx: Any, plan: Any, inv: Any, **kwargs: Any) -> None:
        if racing["on"]:
            barrier.wait()  # both windows are done: both try to finish the run at once
        original_finish(ctx, plan, inv, **kwargs)

    def commit_run(ctx: Any, plan: Any, keys: Any, **kwargs: Any) -> Any:
        commits["n"] += 1
        return original_commit(ctx, plan, keys, **kwargs)

    # Both look for a lease before either creates one, so both try to create lease 0:
    # only the conditional put lets one of them win.
    lease_barrier = threading.Barrier(2, timeout=30)
    original_put_if_absent = S3Store.put_if_absent
    lease_puts = {"n": 0}

    def put_if_absent(
        self: S3Store, key: str, body: bytes, content_type: str = "application/json"
    ) -> bool:
        if racing["on"] and "/commit/lease-" in key:
            lease_puts["n"] += 1
            lease_barrier.wait()
        return original_put_if_absent(self, key, body, content_type)

    monkeypatch.setattr(finish, "finish_run", finish_run)
    monkeypatch.setattr(commit, "commit_run", commit_run)
    monkeypatch.setattr(S3Store, "put_if_absent", put_if_absent)
    import app  # noqa: PLC0415

    arn = lab.sqs.get_queue_attributes(QueueUrl=lab.queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    results: dict[str, Any] = {}
    threads = [
        threading.Thread(
            target=lambda m=m: results.update(
                {m["ReceiptHandle"]: app.handler(sqs_event([m], arn), FakeContext(60_000))}
            )
        )
        for m in messages
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for handle, response in results.items():  # what the event source mapping does next
        if response["batchItemFailures"]:
            lab.sqs.change_message_visibility(
                QueueUrl=lab.queue_url, ReceiptHandle=handle, VisibilityTimeout=0
            )
        else:
            lab.sqs.delete_message(QueueUrl=lab.queue_url, ReceiptHandle=handle)
    # The loser keeps its message until the run is notified, then lets it go.
    assert lease_puts["n"] == 2  # the race really happened
    assert sorted(len(r["batchItemFailures"]) for r in results.values()) == [0, 1]
    racing["on"] = False
    assert commits["n"] == 1
    assert lab.drain().invocations == 1
    notes = lab.notifications()
    assert len(notes) == 1 and notes[0]["body"]["status"] == "succeeded"
    assert_table_matches(lab, 1234, date(2023, 6, 1), date(2023, 6, 2), "utc")


def test_hop_cap_fails_the_run(long_lab: Lab) -> None:
    long_lab.configure(MAX_HOPS="2")
    long_lab.invoke(EVENT, budget_ms=ONE_PAGE_BUDGET)
    long_lab.drain(budget_ms=ONE_PAGE_BUDGET)
    notes = long_lab.notifications()
    assert [n["body"]["status"] for n in notes] == ["failed"]
    assert "MAX_HOPS" in notes[0]["body"]["error"]
    assert data_objects(long_lab) == []


def test_transient_errors_beyond_max_receive_fail_the_run(long_lab: Lab) -> None:
    lab = long_lab
    lab.configure(MAX_RECEIVE_COUNT="3", TIME_SAFETY_MARGIN_MS="5500")
    lab.api.faults.rate_5xx = 1.0
    lab.invoke(
        {"brandId": 1234, "startDate": "2023-06-01", "endDate": "2023-06-01"}, budget_ms=6_000
    )
    report = lab.drain(budget_ms=6_000)
    assert report.failed_records == 2  # redelivered twice, then given up
    notes = lab.notifications()
    assert [n["body"]["status"] for n in notes] == ["failed"]
    assert "gave up after 3 deliveries" in notes[0]["body"]["error"]
    assert data_objects(lab) == []


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[1, 2]",
        json.dumps({"v": 2, "runId": "x"}),
        json.dumps(
            {"v": 1, "runId": "../../etc", "brandId": 1, "window": 0, "step": 0, "cursor": None}
        ),
        json.dumps(
            {
                "v": 1,
                "runId": "20230601T000000000Z-b1234-deadbeef",
                "brandId": 1234,
                "window": 0,
                "step": 0,
                "cursor": None,
            }
        ),
        json.dumps(
            {
                "v": 1,
                "runId": "20230601T000000000Z-b1234-deadbeef",
                "brandId": 1234,
                "window": 0,
                "step": 0,
                "cursor": "c" * 10_000,
            }
        ),
    ],
)
def test_foreign_or_tampered_messages_are_rejected_not_retried(lab: Lab, body: str) -> None:
    lab.sqs.send_message(QueueUrl=lab.queue_url, MessageBody=body)
    report = lab.drain()
    assert report.invocations == 1
    assert report.failed_records == 0
    assert lab.list_keys() == []
    assert lab.notifications() == []


def test_message_for_a_real_run_with_a_mismatched_brand_is_rejected(long_lab: Lab) -> None:
    lab = long_lab
    run_id = lab.invoke(EVENT, budget_ms=ONE_PAGE_BUDGET)["runs"][0]["runId"]
    forged = {"v": 1, "runId": run_id, "brandId": 777, "window": 0, "step": 0, "cursor": None}
    lab.sqs.send_message(QueueUrl=lab.queue_url, MessageBody=json.dumps(forged))
    lab.drain(budget_ms=ONE_PAGE_BUDGET)
    assert not any("brand_id=777" in k for k in lab.list_keys())
    assert_exactly_once(lab)
