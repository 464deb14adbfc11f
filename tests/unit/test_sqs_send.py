"""The SQS adapter sends batches of ten side by side, bounded, and still reports what
SQS refused (exporter/aws.py, `SqsQueue.send`). A fake client stands in for boto3:
it counts the calls in flight at once, which in-process moto serves one at a time."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from exporter.aws import SqsQueue
from exporter.run.parallel import THREADS, sequential


class FakeSqs:
    """`send_message_batch` that takes a while, remembers every entry, and refuses
    the messages whose body is in `refuse`."""

    def __init__(self, refuse: frozenset[str] = frozenset()) -> None:
        self.refuse = refuse
        self.sent: list[dict[str, Any]] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self._lock = threading.Lock()

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        assert QueueUrl == "q" and 1 <= len(Entries) <= 10
        with self._lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        time.sleep(0.05)  # a round trip
        with self._lock:
            self.in_flight -= 1
            self.sent.extend(Entries)
        failed = [
            {"Id": e["Id"], "Code": "Throttled", "Message": "slow down", "SenderFault": False}
            for e in Entries
            if e["MessageBody"] in self.refuse
        ]
        return {"Successful": [], "Failed": failed} if failed else {"Successful": []}


@pytest.fixture
def in_line() -> Iterator[None]:
    sequential(True)
    yield
    sequential(False)


def test_a_brand_years_windows_go_out_in_batches_side_by_side() -> None:
    client = FakeSqs()
    bodies = [f"window {n}" for n in range(365)]
    SqsQueue("q", client).send(bodies)  # type: ignore[arg-type]
    assert sorted(e["MessageBody"] for e in client.sent) == sorted(bodies)  # each once
    assert len(client.sent) == len(bodies)
    assert 1 < client.most_in_flight <= THREADS + 1  # the pool's threads and the caller
    # Ids are unique within a batch, as SQS requires.
    assert {e["Id"] for e in client.sent} == {str(n) for n in range(10)}


def test_a_delay_is_on_every_message() -> None:
    client = FakeSqs()
    SqsQueue("q", client).send([f"b{n}" for n in range(25)], delay_s=30)  # type: ignore[arg-type]
    assert [e["DelaySeconds"] for e in client.sent] == [30] * 25


def test_refused_messages_fail_the_send_once_every_batch_is_answered() -> None:
    bodies = [f"window {n}" for n in range(40)]
    client = FakeSqs(refuse=frozenset({"window 37", "window 12", "window 13"}))
    with pytest.raises(RuntimeError) as raised:
        SqsQueue("q", client).send(bodies)  # type: ignore[arg-type]
    # The first refused in the order of the bodies, and how many were refused.
    assert str(raised.value) == "SQS send failed: Throttled slow down (3 of 40 messages)"
    assert len(client.sent) == 40 and client.in_flight == 0  # nothing left in flight


def test_in_line_mode_sends_one_batch_at_a_time(in_line: None) -> None:
    client = FakeSqs()
    SqsQueue("q", client).send([f"b{n}" for n in range(30)])  # type: ignore[arg-type]
    assert client.most_in_flight == 1 and len(client.sent) == 30
