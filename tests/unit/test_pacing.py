"""The API rate budget: each container's share, and an adaptive pacer that keeps under it."""

from __future__ import annotations

import heapq
import itertools
import math
import random
import threading
from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter import pacing
from exporter.pacing import Pacer, Spacing, share


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


# -- adaptive pacing: a 429 cuts the rate, which climbs back to the share ----------------


def test_a_429_cuts_the_rate_and_it_climbs_back_to_the_share() -> None:
    spacing = Spacing(2.0)
    assert spacing.rate(0.0) == 2.0
    spacing.throttled(10.0)
    assert spacing.rate(10.0) == pytest.approx(2.0 * pacing.BETA)
    # Concave at first: most of the way back in half the recovery time, then flat.
    half = spacing.rate(10.0 + pacing.RECOVERY_S / 2)
    assert 2.0 * pacing.BETA < half < 2.0
    assert half - 2.0 * pacing.BETA > 0.8 * (2.0 - 2.0 * pacing.BETA)
    assert spacing.rate(10.0 + pacing.RECOVERY_S) == pytest.approx(2.0)
    assert spacing.rate(10.0 + 10 * pacing.RECOVERY_S) == 2.0  # never above the share


def test_429s_of_one_episode_cut_once_and_retry_after_holds_the_next_slot() -> None:
    spacing = Spacing(4.0)
    assert spacing.take(0.0) == 0.0
    spacing.throttled(0.1, retry_after_s=2.0)
    spacing.throttled(0.5, retry_after_s=1.0)  # the same episode: no second cut
    assert spacing.cuts == 1
    assert spacing.slot(0.6) == 2.1  # the first Retry-After holds, the shorter one does not
    later = 0.1 + pacing.EPISODE_S
    before = spacing.rate(later)  # climbing back already, a little
    assert 4.0 * pacing.BETA < before < 4.0
    spacing.throttled(later)
    assert spacing.cuts == 2
    assert spacing.rate(later) == pytest.approx(before * pacing.BETA)


def test_repeated_cuts_stop_at_the_floor() -> None:
    spacing = Spacing(1.0)
    for n in range(100):
        spacing.throttled(float(n))
    assert spacing.rate(100.0) == pytest.approx(pacing.FLOOR)


def test_without_adaptation_a_429_only_holds() -> None:
    spacing = Spacing(1.0, adaptive=False)
    spacing.throttled(0.0, retry_after_s=3.0)
    assert (spacing.cuts, spacing.rate(0.0), spacing.slot(0.0)) == (0, 1.0, 3.0)


def test_the_pacer_reports_429s_to_its_spacing() -> None:
    clock = Clock()
    pacer = Pacer(2.0, clock=clock, sleep=clock.sleep)
    pacer.acquire()
    pacer.throttled(retry_after_s=1.0)
    assert pacer.current_rate() == pytest.approx(2.0 * pacing.BETA)
    assert pacer.delay() == pytest.approx(1.0)
    assert pacer.acquire() == pytest.approx(1.0)
    # The next one waits 1 / (the rate now), longer than the share's 0.5 s.
    assert pacer.acquire() > 0.5


Event = tuple[float, str, float]  # (time step, "take" | "429", Retry-After)


@settings(max_examples=300, deadline=None)
@given(
    ceiling=st.floats(min_value=0.05, max_value=200),
    events=st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=30),
            st.sampled_from(["take", "take", "429"]),
            st.floats(min_value=0, max_value=5),
        ),
        max_size=200,
    ),
)
def test_requests_are_never_closer_than_the_share_allows(
    ceiling: float, events: list[Event]
) -> None:
    """Whatever the 429s and their Retry-After, and whenever the requests come, the
    rate never exceeds the share and no two slots are closer than 1 / share: the
    5-s budget's proof (above) holds for adaptive pacers too."""
    spacing = Spacing(ceiling)
    now, slots = 0.0, []
    for step, kind, retry_after in events:
        now += step
        assert spacing.rate(now) <= ceiling
        if kind == "take":
            slot = spacing.take(now)
            assert slot >= now
            slots.append(slot)
            now = slot
        else:
            spacing.throttled(now, retry_after)
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert all(gap >= 1 / ceiling * (1 - 1e-9) for gap in gaps)


def simulate(
    streams: int,
    api_max_rps: float,
    allowed: int,
    *,
    adaptive: bool = True,
    seed: int = 0,
    horizon_s: float = 900.0,
) -> tuple[float, float]:
    """`streams` containers at their share, each one request at a time (latency and a
    pause between invocations drawn at random), against an API that accepts at most
    `allowed` requests in any sliding second and answers 429 with Retry-After: 1
    otherwise. Returns (refused share, accepted requests a second) over the second half."""
    rng = random.Random(seed)
    rate = share(api_max_rps, streams)
    pacers = [Spacing(rate, adaptive=adaptive) for _ in range(streams)]
    accepted: deque[float] = deque()
    ready = [(rng.uniform(0, 2), k) for k in range(streams)]
    heapq.heapify(ready)
    sent = refused = ok = 0
    pages = [0] * streams
    while ready:
        now, k = heapq.heappop(ready)
        if now > horizon_s:
            continue
        slot = pacers[k].take(now)
        while accepted and accepted[0] <= slot - 1.0:
            accepted.popleft()
        counted = slot > horizon_s / 2
        sent += counted
        if len(accepted) >= allowed:
            refused += counted
            answered = slot + 0.02
            pacers[k].throttled(answered, 1.0)
            heapq.heappush(ready, (answered + 1.0, k))
            continue
        ok += counted
        accepted.append(slot)
        answered = slot + rng.uniform(0.05, 0.15)
        pages[k] += 1
        if pages[k] % 40 == 0:  # the next step: S3 calls, a queue round trip
            answered += rng.uniform(0.2, 1.0)
        heapq.heappush(ready, (answered, k))
    return refused / max(sent, 1), ok / (horizon_s / 2)


@settings(max_examples=25, deadline=None)
@given(
    streams=st.integers(min_value=2, max_value=12),
    fair=st.floats(min_value=1.2, max_value=4.0),
    strictness=st.floats(min_value=0.85, max_value=1.0),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_pacers_converge_under_a_sliding_one_second_limiter(
    streams: int, fair: float, strictness: float, seed: int
) -> None:
    """Against a limiter of any second (at API_MAX_RPS, or up to 15 % stricter), the
    pacers settle where fewer than 5 % of requests are refused, and still get most
    of what the limiter lets through."""
    api_max_rps = fair * streams
    allowed = max(streams + 1, math.floor(api_max_rps * strictness))
    refused, accepted = simulate(streams, api_max_rps, allowed, seed=seed)
    assert refused < 0.05
    assert accepted > 0.5 * min(allowed, streams * share(api_max_rps, streams))


def test_fixed_pacers_do_not_converge_where_adaptive_ones_do() -> None:
    """The case the simulation stands for (issue 27: 6 pollers, 8 requests in any
    second): pacers that only honour Retry-After keep being refused."""
    fixed = [simulate(6, 8, 7, adaptive=False, seed=s)[0] for s in range(3)]
    adaptive = [simulate(6, 8, 7, seed=s)[0] for s in range(3)]
    assert min(fixed) > 0.08 and max(adaptive) < 0.05


def test_containers_started_together_do_not_send_in_step() -> None:
    """The first request waits a random part of one interval (at most 1 s)."""
    clock = Clock()
    assert Pacer(2.0, clock=clock, sleep=clock.sleep, jitter=lambda: 0.5).acquire() == 0.25
    assert Pacer(0.1, clock=clock, sleep=clock.sleep, jitter=lambda: 0.5).acquire() == 0.5
    firsts = {pacing.for_settings(8, 6).delay() for _ in range(20)}  # type: ignore[union-attr]
    assert len(firsts) > 1 and all(0 <= d < 1 / share(8, 6) for d in firsts)
