"""The campaign's deadline check (`local.campaign.Probe`): an invocation past its deadline
is reported, unless the time it ran over is time its threads spent waiting for a CPU
while the process ran nothing."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from exporter.aws import SqsQueue
from local.campaign import PROCESS, Probe, cpu_wait_ms
from local.harness import FakeContext
from tests.chaos.campaign import (
    EVENT,
    HOP,
    REDELIVERY_S,
    chaos_lab,
    dead_workers_do_nothing,
    execute,
    fast_retries,
)
from tests.integration.conftest import Lab

__all__ = ["chaos_lab", "dead_workers_do_nothing", "fast_retries"]

BUDGET_MS = 50


def sleeps(seconds: float) -> Any:
    def handler(event: dict[str, Any], context: Any) -> str:
        time.sleep(seconds)
        return "done"

    return handler


def test_an_invocation_in_time_is_not_reported() -> None:
    probe = Probe()
    assert probe.handler(sleeps(0))({}, FakeContext(10_000)) == "done"
    assert probe.overruns == 0 and probe.invocations == 1


def test_an_invocation_sleeping_past_its_deadline_is_reported() -> None:
    """Sleeping is not waiting for a CPU: no credit, whatever the machine's load."""
    probe = Probe()
    probe.handler(sleeps(3 * BUDGET_MS / 1000))({}, FakeContext(BUDGET_MS))
    assert probe.overruns == 1
    assert "ms late" in probe.overrun_details[0]


def test_a_busy_invocation_past_its_deadline_is_reported_under_any_load() -> None:
    """Twice its budget of its own CPU time: even with every wait for a CPU credited
    (wall time = CPU time + waits for a CPU + sleeps), it is a budget late."""

    def busy(event: dict[str, Any], context: Any) -> None:
        started = time.thread_time()
        while time.thread_time() - started < 2 * BUDGET_MS / 1000:
            pass

    probe = Probe()
    probe.handler(busy)({}, FakeContext(BUDGET_MS))
    assert probe.overruns == 1, probe.overrun_details


def test_time_spent_waiting_for_a_cpu_is_not_counted() -> None:
    """The rule, with the wait given: over the deadline by less than the wait is in time
    (a dedicated CPU would have made it), by more is late."""
    waits = iter([0.0, 60_000.0, 0.0, 10.0])
    probe = Probe(cpu_wait=lambda: next(waits))
    handler = probe.handler(sleeps(3 * BUDGET_MS / 1000))
    handler({}, FakeContext(BUDGET_MS))
    assert probe.overruns == 0 and probe.cpu_waited_ms == 60_000.0
    handler({}, FakeContext(BUDGET_MS))
    assert probe.overruns == 1
    assert "10 ms of it waiting for a CPU" in probe.overrun_details[0]


def test_the_workers_waits_are_credited_while_the_process_ran_nothing() -> None:
    """A commit's copies run on the store pool: their waits count too, up to the time
    the process was off every CPU (here all of it: its CPU time does not move)."""
    waits = iter([{7: 5.0}, {7: 60_005.0, 8: 1_000.0}])
    probe = Probe(cpu_wait=lambda: 0.0, workers_waits=lambda: next(waits), cpu_time=lambda: 0.0)
    probe.handler(sleeps(3 * BUDGET_MS / 1000))({}, FakeContext(BUDGET_MS))
    assert probe.overruns == 0, probe.overrun_details
    # Credited: the wall time (about 3 budgets), not the 61 s the threads claim.
    assert 3 * BUDGET_MS <= probe.cpu_waited_ms < 60_000


def test_waits_are_not_credited_beyond_the_time_the_process_was_off_the_cpus() -> None:
    """Waits side by side overlap: summed they can pass the wall time. A process that ran
    the whole time (its CPU time moving with the clock) gets none of them."""
    waits = iter([{7: 0.0}, {7: 60_000.0}])
    probe = Probe(cpu_wait=lambda: 0.0, workers_waits=lambda: next(waits), cpu_time=time.monotonic)
    probe.handler(sleeps(3 * BUDGET_MS / 1000))({}, FakeContext(BUDGET_MS))
    assert probe.overruns == 1


def test_a_busy_worker_thread_past_the_deadline_is_reported_under_any_load() -> None:
    """The real counters: a store-pool thread burning twice the budget of its own CPU
    time. Whatever it waited, the process ran for those two budgets, so at most the
    waits beyond them are credited: a budget late."""

    def busy_worker(event: dict[str, Any], context: Any) -> None:
        def burn() -> None:
            started = time.thread_time()
            while time.thread_time() - started < 2 * BUDGET_MS / 1000:
                pass

        worker = threading.Thread(target=burn, name="store-probe")
        worker.start()
        worker.join()

    probe = Probe()
    probe.handler(busy_worker)({}, FakeContext(BUDGET_MS))
    assert probe.overruns == 1, probe.overrun_details


@pytest.mark.skipif(sys.platform != "linux", reason="schedstat is Linux's")
def test_the_wait_for_a_cpu_is_read_from_the_kernel() -> None:
    """Where the kernel tells it, the credit is real (elsewhere it is 0: the strict check)."""
    assert Path(f"/proc/self/task/{threading.get_native_id()}/schedstat").exists()
    first = cpu_wait_ms()
    assert 0.0 <= first <= cpu_wait_ms()


def test_a_slow_step_tail_is_reported_in_a_campaign_run(
    chaos_lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The campaign's setting: one hand-over (after the margin check) sleeps a whole
    invocation's budget; the run still succeeds, and the judge names that invocation."""
    original = SqsQueue.send
    slowed: list[str] = []

    def slow_send(self: SqsQueue, *args: Any, **kwargs: Any) -> Any:
        if not slowed and PROCESS.delivery is not None:
            window, step, count = PROCESS.delivery
            slowed.append(f"w{window} s{step} delivery {count}")
            time.sleep(HOP / 1000)
        return original(self, *args, **kwargs)

    def arm() -> None:
        monkeypatch.setattr(SqsQueue, "send", slow_send)

    run = execute(chaos_lab, EVENT, budget_ms=HOP, arm=arm, redelivery_delay_s=REDELIVERY_S)
    assert [n["body"]["status"] for n in chaos_lab.notifications()] == ["succeeded"]
    assert len(slowed) == 1
    late = [d for d in run.probe.overrun_details if d.startswith(f"{slowed[0]}:")]
    assert late, f"the slowed invocation {slowed[0]} was not reported: {run.probe.overrun_details}"
