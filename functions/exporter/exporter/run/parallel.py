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
            _pool = ThreadPoolExecutor(THREADS, thread_name_prefix="store")
        return _pool


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
    return tuple(_gather(calls[0], [_executor().submit(call) for call in calls[1:]]))


def each_at_once(function: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """`[function(item) for item in items]`, the calls side by side."""
    todo = list(items)
    if len(todo) <= 1:
        return [function(item) for item in todo]
    first, *rest = todo
    futures = [_executor().submit(function, item) for item in rest]
    return _gather(lambda: function(first), futures)


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
