"""Chaos campaign: SQS delivery, bad events and bad checkpoint messages."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from local.campaign import (
    Campaign,
    Probe,
    fired,
    scenario,
)
from local.chaos import (
    CampaignRow,
)
from local.harness import FakeContext, drain
from tests.chaos.campaign import (
    BIG,
    BRAND,
    EVENT,
    HOP,
    Earlier,
    chaos_lab,
    dead_workers_do_nothing,
    earlier,
    execute,
    fast_retries,
    fingerprint,
    queue_depth,
    settle,
)
from tests.integration.conftest import Lab
from tests.integration.test_bad_input import CASES as BAD_EVENT_CASES

__all__ = ["chaos_lab", "dead_workers_do_nothing", "earlier", "fast_retries"]


# -- SQS delivery ---------------------------------------------------------------------------

# A batch of 10 gets the time of 10 deliveries: the template's BatchSize is 1, and
# one HOP (the safety margin + 1 ms) for ten steps in a row overran on a loaded
# machine (the handler starts each record of a batch whatever the time left).
BATCH_HOPS = 10
DELIVERY: list[tuple[str, dict[str, Any]]] = [
    ("every message delivered twice", {"duplicate": True}),
    ("batches of 10 shuffled and duplicated", {"duplicate": True, "shuffle": random.Random(7)}),
    ("every 3rd invocation dies before it starts; redelivered after 0.2 s",
     {"crash": lambda n: n % 3 == 0, "redelivery_delay_s": 0.2}),
]  # fmt: skip


@pytest.mark.parametrize(("case", "kwargs"), DELIVERY, ids=[d[0] for d in DELIVERY])
def test_delivery(
    chaos_lab: Lab, earlier: Earlier, campaign: Campaign, case: str, kwargs: dict[str, Any]
) -> None:
    with scenario(campaign, "SQS delivery", case, "succeeded", "the harness's SQS") as row:
        budget = HOP * BATCH_HOPS if "shuffle" in kwargs else HOP
        run = execute(chaos_lab, EVENT, budget_ms=budget, earlier=earlier, **kwargs)
        report = run.report
        if "crash" in kwargs:
            settle(run, row, "succeeded", kills=None)
            assert report.crashed_invocations == report.invocations // 3
            fired(row, report.crashed_invocations, "invocations killed before they started")
        else:
            settle(run, row, "succeeded")
            fired(row, report.duplicates_delivered, "duplicate deliveries")
        row.redeliveries += report.duplicates_delivered


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
        with scenario(
            campaign, "Bad events", case, f"rejected, names {named}", "the handler's event"
        ) as row:
            probe = Probe()
            response = probe.handler()(event, FakeContext(BIG))  # type: ignore[arg-type]
            row.invocations = probe.invocations
            fired(row, probe.invocations, "invocation with it")
            row.checked = "error names the field; no S3 object, message or notification"
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
    table = fingerprint(lab)
    messages = [
        *BAD_MESSAGES,
        ("real run, another brand", json.dumps({"v": 1, "runId": real, "brandId": 777,
                                                "window": 0, "step": 0, "cursor": None})),
        ("real run, window out of range", json.dumps({"v": 1, "runId": real, "brandId": BRAND,
                                                      "window": 99, "step": 0, "cursor": None})),
    ]  # fmt: skip
    violations: list[str] = []
    for case, body in messages:
        with scenario(campaign, "Bad checkpoints", case, "rejected once, nothing written",
                      "an SQS message body") as row:  # fmt: skip
            before_keys = set(lab.list_keys())
            lab.sqs.send_message(QueueUrl=lab.queue_url, MessageBody=body)
            probe = Probe()
            report = drain(probe.handler(), lab.sqs, lab.queue_url, budget_ms=BIG)
            row.invocations, row.redeliveries = report.invocations, report.failed_records
            delivered = sum(r["body"] == body for e in probe.events for r in e.get("Records", []))
            row.fired = f"yes: {delivered} delivery" if delivered else "NO: never delivered"
            row.checked = "1 delivery, not retried; no new key; table byte-identical; no notice"
            new_keys = sorted(set(lab.list_keys()) - before_keys)
            row.notifications = len(lab.notifications()) - 1
            ok = (
                delivered == 1
                and report.invocations == 1
                and report.failed_records == 0
                and report.crashed_invocations == 0
                and not new_keys
                and fingerprint(lab) == table
                and row.notifications == 0
            )
            row.outcome = "rejected" if ok else "VIOLATION"
            row.detail = f"new keys {new_keys[:2]}" if new_keys else "dropped, logged"
            if not ok:
                violations.append(f"{case}: {row}")
    assert not violations, violations
