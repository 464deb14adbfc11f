"""Reading v3 pages ahead on a thread, so the API's latency hides behind row shaping.

v3 cursors are sequential (page n+1's cursor arrives with page n), so a single
reader thread walks the chain and keeps up to `depth` parsed pages waiting.
It stops asking for more when `keep_going()` says the invocation has no time
left for another page, when the chain ends, or on the first error.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator
from typing import Any

from exporter.errors import MalformedResponse

Fetch = Callable[[str | None, bool], tuple[list[Any], str | None]]
_POLL_S = 0.1


def read_ahead(
    fetch: Fetch,
    first_cursor: str | None,
    keep_going: Callable[[], bool],
    depth: int = 1,
) -> Generator[tuple[list[Any], str | None], None, None]:
    """Yield (records, next cursor) page by page, in order.

    `fetch(cursor, follow_on)` gets one page; `follow_on` is False for the first
    page only. Errors are raised from the generator after the pages fetched
    before them have been yielded. The chain ends at a page whose next cursor is
    None (all fetched) or, when time ran out, at the last page fetched.
    """
    pages: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                pages.put(item, timeout=_POLL_S)
            except queue.Full:
                continue
            return True
        return False

    def walk() -> None:
        cursor, seen = first_cursor, {first_cursor}
        follow_on = False
        while not stop.is_set():
            try:
                data, next_cursor = fetch(cursor, follow_on)
            except BaseException as exc:  # handed to the consumer, Killed included
                put(("error", exc))
                return
            if next_cursor is not None and next_cursor in seen:
                put(("error", MalformedResponse("v3 cursor repeats: the API is looping")))
                return
            if not put(("page", (data, next_cursor))):
                return
            if next_cursor is None or not keep_going():
                put(("end", None))
                return
            seen.add(next_cursor)
            cursor, follow_on = next_cursor, True

    reader = threading.Thread(target=walk, name="read-ahead", daemon=True)
    reader.start()
    try:
        while True:
            kind, value = pages.get()
            if kind == "page":
                yield value
            elif kind == "error":
                raise value
            else:
                return
    finally:
        stop.set()
        reader.join(timeout=_POLL_S * 2)
