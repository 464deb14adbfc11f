"""Deliveries of a step are counted in the run's own state (issue 22): a record from
the deployment's queue claiming its fifth delivery (`ApproximateReceiveCount`) cannot
end a run that has seen one delivery of that step."""

from __future__ import annotations

from typing import Any

import pytest

from local.harness import Killed
from tests.integration.conftest import Lab
from tests.integration.test_hardening import forged
from tests.integration.test_hostile_runs import EVENT


def succeeded(lab: Lab) -> dict[str, Any]:
    (note,) = lab.notifications()
    assert note["body"]["status"] == "succeeded", note["body"]
    return dict(note["body"])


def test_a_claimed_receive_count_alone_cannot_fail_a_run(lab: Lab) -> None:
    arn = lab.sqs.get_queue_attributes(QueueUrl=lab.queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    (run,) = lab.invoke(EVENT)["runs"]
    checkpoint = {"v": 2, "runId": run["runId"], "brandId": 1234, "window": 0, "step": 0}
    lab.api.faults.rate_5xx = 1.0
    answer = lab.invoke(forged({**checkpoint, "cursor": None}, arn, receive_count=5))
    assert answer["batchItemFailures"], answer  # redelivered, not the end of the run
    assert lab.api.stats.data_calls > 0  # the step was tried: the record is the queue's
    assert lab.notifications() == []
    lab.api.faults.rate_5xx = 0.0
    lab.drain()
    assert succeeded(lab)["runId"] == run["runId"]


def test_a_step_killed_on_every_delivery_fails_the_run_on_its_last(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An invocation killed for memory raises nothing: before, five kills sent the
    step to the DLQ and nobody was told. Now the last delivery, finding the one
    before it killed (begun, never ended), fails the run with its notification."""
    from exporter.run import step  # noqa: PLC0415

    def killed(*_args: Any, **_kwargs: Any) -> Any:
        raise Killed("out of memory")

    monkeypatch.setattr(step, "walk_window", killed)
    lab.invoke(EVENT)
    lab.drain(crashes=None)
    (note,) = lab.notifications()
    assert note["body"]["status"] == "failed"
    assert "killed" in note["body"]["error"]
    assert "after 5 deliveries" in note["body"]["error"]
