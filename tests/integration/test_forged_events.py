"""Forged scheduled events and oversized fan-out, through `app.handler` with moto and
the fake API: refused naming the field, nothing written, nothing sent; run ids
stamped with the real clock (docs/contracts.md, "Scheduled events", "Limits of one
event")."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from exporter.errors import ConfigError
from tests.integration.conftest import Lab

# The function's clock in these tests: a fixed afternoon, running (no midnight near).
CLOCK_START = datetime(2024, 3, 12, 14, 0, tzinfo=UTC)


def run_clock(lab: Lab, start: datetime = CLOCK_START) -> Callable[[], datetime]:
    """Make the function's clock run from `start`; returns it."""
    from exporter import wiring  # noqa: PLC0415

    offset = datetime.now(UTC) - start

    def clock() -> datetime:
        return datetime.now(UTC) - offset

    lab.monkeypatch.setattr(wiring, "CLOCK", clock)
    lab.configure()  # a new context, with the clock
    return clock


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def rule_event(
    time: datetime, event_id: str = "6a7e8f10-0000-4000-8000-000000000001"
) -> dict[str, Any]:
    return {
        "version": "0",
        "id": event_id,
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": iso(time),
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/wifi-export-nightly"],
        "detail": {},
    }


def stamp(run_id: str) -> datetime:
    """The start time a run id carries: `YYYYMMDDTHHMMSSmmmZ-b...`."""
    return datetime.strptime(run_id.split("-", maxsplit=1)[0], "%Y%m%dT%H%M%S%fZ").replace(
        tzinfo=UTC
    )


def assert_nothing_happened(lab: Lab) -> None:
    assert lab.list_keys() == [], "an S3 object was written"
    for url in (lab.queue_url, lab.dlq_url):
        attributes = lab.sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        assert set(attributes.values()) == {"0"}, f"a message was sent to {url}"
    assert lab.notifications() == []
    stats = lab.api.stats
    assert (stats.data_calls, stats.tokens_issued) == (0, 0), "the API was called"


T = CLOCK_START
FORGED: list[tuple[str, dict[str, Any], str]] = [
    ("no source", {k: v for k, v in rule_event(T).items() if k != "source"}, "source"),
    ("another source", {**rule_event(T), "source": "my.app"}, "source"),
    ("aws.events, another detail-type", {**rule_event(T), "detail-type": "Object Created"},
     "detail-type"),
    ("a day ahead (the attack: its run id would outrank later real runs)",
     rule_event(T + timedelta(days=1)), "time"),
    ("six minutes ahead", rule_event(T + timedelta(minutes=6)), "time"),
    ("seven hours behind", rule_event(T - timedelta(hours=7)), "time"),
    ("last year", rule_event(T - timedelta(days=365)), "time"),
    ("time not a string", {**rule_event(T), "time": 1710252000}, "time"),
    ("id not a string", {**rule_event(T), "id": ["a"]}, "id"),
    ("scheduler, wrong detail-type", {"source": "aws.scheduler", "detail-type": "Build"},
     "detail-type"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "event", "field"), FORGED, ids=[f[0] for f in FORGED])
def test_a_forged_scheduled_event_is_refused_and_writes_nothing(
    lab: Lab, case: str, event: dict[str, Any], field: str
) -> None:
    run_clock(lab)
    response = lab.invoke(event)
    assert response["error"] == "InvalidEvent", case
    assert response["message"].startswith(f"{field}: "), response["message"]
    lab.drain()
    assert_nothing_happened(lab)


def test_a_real_event_runs_and_its_run_ids_take_the_real_clock(lab: Lab) -> None:
    clock = run_clock(lab)
    fired = clock() - timedelta(seconds=30)
    event = rule_event(fired)
    before = clock()
    response = lab.invoke(event)
    (run,) = response["runs"]
    assert (run["startDate"], run["endDate"]) == ("2024-03-11", "2024-03-11")
    assert before - timedelta(seconds=1) <= stamp(run["runId"]) <= clock()
    lab.drain()
    assert [n["body"]["status"] for n in lab.notifications()] == ["succeeded"]
    # Lambda retries the same event minutes later: the same run, no second notification.
    run_clock(lab, clock() + timedelta(minutes=3))
    again = lab.invoke(event)
    assert [r["runId"] for r in again["runs"]] == [run["runId"]]
    lab.drain()
    assert len(lab.notifications()) == 1  # all of them so far


def test_an_event_stamped_ahead_cannot_outrank_a_later_real_run(lab: Lab) -> None:
    """The attack of issue 12, within the skew allowed: an event stamped 4 minutes ahead.
    Its run id takes the clock, so the real run after it is newer and owns the day."""
    clock = run_clock(lab)
    forged = lab.invoke(rule_event(clock() + timedelta(minutes=4), "forged-0001"))
    (forged_run,) = forged["runs"]
    assert stamp(forged_run["runId"]) <= clock()
    lab.drain()
    run_clock(lab, clock() + timedelta(seconds=20))  # the real schedule fires after it
    real = lab.invoke(rule_event(clock(), "real-0001"))
    (real_run,) = real["runs"]
    lab.drain()
    assert (forged_run["startDate"], forged_run["endDate"]) == (
        real_run["startDate"],
        real_run["endDate"],
    )
    assert real_run["runId"] > forged_run["runId"]
    table = lab.list_keys(lab.env["DATA_PREFIX"] + "/")
    assert table and all(key.rsplit("/", 1)[1].startswith(real_run["runId"]) for key in table)
    notes = lab.notifications()
    assert sorted((n["body"]["runId"], n["body"]["status"]) for n in notes) == sorted(
        [(forged_run["runId"], "succeeded"), (real_run["runId"], "succeeded")]
    )


def test_too_many_brands_are_refused_and_write_nothing(lab: Lab) -> None:
    event = {"brandIds": list(range(1, 102)), "startDate": "2023-06-01", "endDate": "2023-06-01"}
    response = lab.invoke(event)
    assert response["error"] == "InvalidEvent"
    assert response["message"].startswith("brandIds: 101 brands, more than the maximum of 100")
    assert_nothing_happened(lab)


def test_too_many_windows_are_refused_and_write_nothing(lab: Lab) -> None:
    lab.configure(MAX_WINDOWS_PER_EVENT="5")
    # 30 days in windows of 5: 6 windows, one more than allowed.
    event = {"brandId": 1234, "startDate": "2023-06-01", "endDate": "2023-06-30"}
    response = lab.invoke(event)
    assert response["error"] == "InvalidEvent"
    assert response["message"].startswith("endDate: the event would fan out into 6 windows")
    assert_nothing_happened(lab)
    # At the bound it runs.
    ok = lab.run({**event, "endDate": "2023-06-25"})
    assert len(ok["runs"][0]["windows"]) == 5


def test_an_invalid_event_message_is_bounded(lab: Lab) -> None:
    response = lab.invoke({"brandId": 1234, "startDate": "x" * 1_000_000, "endDate": "2023-06-01"})
    assert response["error"] == "InvalidEvent"
    assert response["message"].startswith("startDate: 'xxx")
    assert len(response["message"]) <= 1_000
    assert_nothing_happened(lab)


def test_max_hops_above_its_maximum_fails_the_cold_start(lab: Lab) -> None:
    lab.configure(MAX_HOPS="1001")
    with pytest.raises(ConfigError, match=r"^MAX_HOPS: must be between 1 and 1000, got 1001"):
        lab.invoke({"brandId": 1234, "startDate": "2023-06-01", "endDate": "2023-06-01"})
    assert lab.list_keys() == []
