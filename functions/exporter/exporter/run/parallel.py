"""Independent store calls side by side.

Every S3 call is a round trip (tens of milliseconds in AWS), and finishing a
run makes about twenty; the ones that do not depend on each other's answers
go out together (docs/performance.md, "Fixed costs"). Only reads, or writes
whose order the protocol does not rely on, are grouped: every "this, then
that" of docs/architecture.md stays sequential in the caller.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Final, TypeVar, overload

# Enough for the widest group (a commit's copies); a warm container
# keeps the threads between invocations.
THREADS: Final = 8

_pool: ThreadPoolExecutor | None = None
_lock = threading.Lock()
# Marks the pool's own threads: a call from one of them runs its group in line,
# since waiting there for other pool threads can deadlock a saturated pool (a
# commit settles days side by side, and a day's settling may group calls too).
_inside = threading.local()
# Every group one call after another (`sequential`): the benchmarks' baseline.
_sequential = False

A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")
D = TypeVar("D")
T = TypeVar("T")
R = TypeVar("R")


def _executor() -> ThreadPoolExecutor:
    global _pool  # noqa: PLW0603 -- one pool per container, created on first use
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                THREADS, thread_name_prefix="store", initializer=_mark_inside
            )
        return _pool


def _mark_inside() -> None:
    _inside.active = True


def _in_line() -> bool:
    return _sequential or getattr(_inside, "active", False)


def sequential(on: bool) -> None:
    """Run every group one call after another (True), or side by side again (False).

    Only `make bench-scale` sets it, to measure what running side by side saves."""
    global _sequential  # noqa: PLW0603 -- a process-wide switch, read on every group
    _sequential = on


@overload
def at_once(a: Callable[[], A], b: Callable[[], B], /) -> tuple[A, B]: ...
@overload
def at_once(a: Callable[[], A], b: Callable[[], B], c: Callable[[], C], /) -> tuple[A, B, C]: ...
@overload
def at_once(
    a: Callable[[], A], b: Callable[[], B], c: Callable[[], C], d: Callable[[], D], /
) -> tuple[A, B, C, D]: ...
def at_once(*calls: Callable[[], Any]) -> tuple[Any, ...]:
    """Run the calls concurrently (the first in this thread); their results in order.

    Every call runs to its end before this returns or raises, so nothing is left
    writing behind the caller's back; the first error in argument order is raised.
    """
    if _in_line():
        return tuple(_in_order(calls))
    return tuple(_gather(calls[0], [_executor().submit(call) for call in calls[1:]]))


def each_at_once(function: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """`[function(item) for item in items]`, the calls side by side."""
    todo = list(items)
    if len(todo) <= 1 or _in_line():
        return [function(item) for item in todo]
    first, *rest = todo
    futures = [_executor().submit(function, item) for item in rest]
    return _gather(lambda: function(first), futures)


def _in_order(calls: Sequence[Callable[[], Any]]) -> list[Any]:
    """`at_once` in line: every call still runs before the first error is raised."""
    return _gather(calls[0], [_ran(call) for call in calls[1:]])


def _ran(call: Callable[[], Any]) -> Future[Any]:
    done: Future[Any] = Future()
    try:
        done.set_result(call())
    except BaseException as exc:
        done.set_exception(exc)
    return done


def _gather(first: Callable[[], Any], futures: Sequence[Future[Any]]) -> list[Any]:
    results: list[Any] = []
    error: BaseException | None = None
    try:
        results.append(first())
    except BaseException as exc:  # raised below, once the others have ended
        error = exc
    for future in futures:
        try:
            results.append(future.result())
        except BaseException as exc:
            error = error or exc
    if error is not None:
        raise error
    return results
