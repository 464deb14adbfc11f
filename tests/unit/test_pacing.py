"""The API rate budget: each invocation's share, and a pacer that keeps to it."""

from __future__ import annotations

import itertools
import math
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter import pacing
from exporter.pacing import Pacer, share


class Clock:
    """A fake monotonic clock that only moves when the pacer sleeps (or a test says so)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            self.now += seconds


def test_share_leaves_one_request_per_window_for_each_invocation() -> None:
    assert share(100, 8) == pytest.approx(100 / 8 - 1 / pacing.WINDOW_S)
    assert share(20, 5) == pytest.approx(4 - 0.2)
    # A budget too small to subtract from: half of the fair share.
    assert share(1, 8) == pytest.approx(1 / 16)
    with pytest.raises(ValueError):
        share(0, 5)


def test_pacer_spaces_calls_and_takes_no_burst() -> None:
    clock = Clock()
    pacer = Pacer(4.0, clock=clock, sleep=clock.sleep)
    assert pacer.delay() == 0
    times = []
    for _ in range(5):
        pacer.acquire()
        times.append(clock.now)
    assert [round(b - a, 9) for a, b in itertools.pairwise(times)] == [0.25] * 4
    assert pacer.delay() == pytest.approx(0.25)
    assert pacer.waited_s == pytest.approx(1.0)


def test_time_spent_elsewhere_counts_towards_the_next_slot() -> None:
    clock = Clock()
    pacer = Pacer(2.0, clock=clock, sleep=clock.sleep)
    pacer.acquire()
    clock.now += 0.4  # the request itself took 0.4 s
    assert pacer.acquire() == pytest.approx(0.1)
    clock.now += 5.0  # an idle container: no credit saved up for a burst
    assert pacer.acquire() == 0
    assert pacer.acquire() == pytest.approx(0.5)


def test_threads_share_one_pacer() -> None:
    clock = Clock()
    pacer = Pacer(10.0, clock=clock, sleep=lambda s: None)
    slots: list[float] = []
    lock = threading.Lock()

    def take() -> None:
        for _ in range(50):
            wait = pacer.acquire()
            with lock:
                slots.append(clock.now + wait)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    slots.sort()
    assert len(slots) == 200
    assert min(b - a for a, b in itertools.pairwise(slots)) == pytest.approx(0.1)


def test_no_budget_no_pacer() -> None:
    assert pacing.for_settings(None, 5) is None
    pacer = pacing.for_settings(50.0, 5)
    assert pacer is not None and pacer.rate == pytest.approx(9.8)


@settings(max_examples=300, deadline=None)
@given(
    rps=st.floats(min_value=0.5, max_value=500),
    streams=st.integers(min_value=1, max_value=40),
    phases=st.lists(st.floats(min_value=0, max_value=10), min_size=40, max_size=40),
    gaps=st.lists(st.floats(min_value=0, max_value=0.5), min_size=40, max_size=40),
)
def test_streams_at_their_share_keep_any_5_s_window_within_the_budget(
    rps: float, streams: int, phases: list[float], gaps: list[float]
) -> None:
    """N invocations, each spacing its requests at least 1/share apart from any phase
    (and sometimes slower), never put more than 5 x API_MAX_RPS requests into any 5 s,
    whenever the share is the subtracted one (not the half-share fallback)."""
    rate = share(rps, streams)
    if rate != pytest.approx(rps / streams - 1 / pacing.WINDOW_S):
        return  # the fallback: the long-run rate holds, the 5 s bound is not promised
    horizon = 30.0
    times: list[float] = []
    for n in range(streams):
        t = phases[n]
        while t < horizon:
            times.append(t)
            t += 1 / rate + gaps[n]
    times.sort()
    # The densest window of 5 s starts at some request.
    end = 0
    densest = 0
    for start, t0 in enumerate(times):
        while end < len(times) and times[end] < t0 + pacing.WINDOW_S:
            end += 1
        densest = max(densest, end - start)
    assert densest <= math.floor(pacing.WINDOW_S * rps + 1e-9)
