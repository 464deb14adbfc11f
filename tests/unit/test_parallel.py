"""Independent store calls side by side: results in order, every call ended before an error."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from exporter.run.parallel import THREADS, at_once, each_at_once, sequential


class Killed(BaseException):
    pass


def test_calls_overlap_and_results_keep_their_order() -> None:
    barrier = threading.Barrier(3, timeout=30)  # only passes if all three run at once

    def call(value: str) -> str:
        barrier.wait()
        return value

    assert at_once(lambda: call("a"), lambda: call("b"), lambda: call("c")) == ("a", "b", "c")


def test_each_at_once_is_a_map_in_order() -> None:
    assert each_at_once(lambda n: n * n, range(20)) == [n * n for n in range(20)]
    assert each_at_once(lambda n: n, []) == []


def _blocked_in_a_wait(thread_id: int) -> bool:
    """The thread is parked in a `threading` wait (a lock, a condition, a future)."""
    frame = sys._current_frames().get(thread_id)
    while frame is not None:
        if frame.f_code.co_name == "wait" and frame.f_code.co_filename == threading.__file__:
            return True
        frame = frame.f_back
    return False


def test_an_error_is_raised_only_after_every_call_ended() -> None:
    # No sleep to outlast: `slow` cannot end before `fail` has raised and the caller of
    # at_once is parked waiting, so an at_once that raised without waiting for `slow`
    # finds `ended` empty, however slowly either thread runs.
    ended: list[str] = []
    caller = threading.get_ident()
    raised, looked = threading.Event(), threading.Event()

    def slow() -> None:
        give_up = time.monotonic() + 30  # a broken at_once: ends once the test looked
        while time.monotonic() < give_up and not looked.is_set():
            if raised.is_set() and _blocked_in_a_wait(caller):
                break
            time.sleep(0.001)
        ended.append("slow")

    def fail() -> None:
        raised.set()
        raise ValueError("first")

    with pytest.raises(ValueError, match="first"):
        at_once(fail, slow)
    seen = list(ended)
    looked.set()
    assert seen == ["slow"]


def test_the_first_error_in_argument_order_wins_and_kills_pass_through() -> None:
    def boom(exc: BaseException) -> None:
        raise exc

    with pytest.raises(KeyError):
        at_once(lambda: None, lambda: boom(KeyError("a")), lambda: boom(ValueError("b")))
    with pytest.raises(Killed):
        each_at_once(lambda n: boom(Killed()) if n == 3 else n, range(5))


def test_groups_inside_groups_never_wait_for_a_saturated_pool() -> None:
    # Every pool thread busy with an outer call that groups calls of its own: were
    # those queued behind the outer ones, every thread would wait on the queue.
    outcome: list[list[int]] = []

    def inner(n: int) -> int:
        return sum(each_at_once(lambda m: m + n, range(3)))

    worker = threading.Thread(
        target=lambda: outcome.append(each_at_once(inner, range(4 * THREADS))), daemon=True
    )
    worker.start()
    worker.join(timeout=10)
    assert outcome == [[3 * n + 3 for n in range(4 * THREADS)]]


def test_the_sequential_switch_runs_every_group_in_the_callers_thread() -> None:
    sequential(True)
    try:
        threads = each_at_once(lambda _: threading.get_ident(), range(10))
        pair = at_once(threading.get_ident, threading.get_ident)
    finally:
        sequential(False)
    assert set(threads) == set(pair) == {threading.get_ident()}
    assert len(set(each_at_once(lambda _: threading.get_ident(), range(30)))) > 1
