from __future__ import annotations

from typing import Any

import pytest

from exporter.errors import MalformedResponse, TransientError
from exporter.pages import read_ahead


def chain(*cursors: str | None, fail_at: str = "never") -> Any:
    """A fetch over a scripted chain: page i is requested with cursors[i - 1]."""
    follow = dict(zip((None, *cursors[:-1]), cursors, strict=True))
    calls: list[tuple[str | None, bool]] = []

    def fetch(cursor: str | None, follow_on: bool) -> tuple[list[Any], str | None]:
        calls.append((cursor, follow_on))
        if cursor == fail_at:
            raise TransientError("503")
        return [{"page": cursor}], follow[cursor]

    return fetch, calls


def test_walks_the_whole_chain_in_order() -> None:
    fetch, calls = chain("a", "b", None)
    pages = list(read_ahead(fetch, None, lambda: True))
    assert pages == [([{"page": None}], "a"), ([{"page": "a"}], "b"), ([{"page": "b"}], None)]
    assert calls == [(None, False), ("a", True), ("b", True)]


def test_stops_asking_when_time_is_up() -> None:
    fetch, calls = chain("a", "b", None)
    pages = list(read_ahead(fetch, None, lambda: False))
    assert pages == [([{"page": None}], "a")]  # the last page names where to resume
    assert calls == [(None, False)]


def test_an_error_comes_after_the_pages_before_it() -> None:
    fetch, _ = chain("a", "b", None, fail_at="b")
    got = []
    with pytest.raises(TransientError):
        for page in read_ahead(fetch, None, lambda: True):
            got.append(page)
    assert [cursor for _, cursor in got] == ["a", "b"]


def test_a_repeating_cursor_is_malformed() -> None:
    fetch, _ = chain("a", "b", "a")
    with pytest.raises(MalformedResponse, match="repeats"):
        list(read_ahead(fetch, None, lambda: True))


def test_closing_early_stops_the_reader() -> None:
    fetch, calls = chain(*[f"c{n}" for n in range(100)], None)
    pages = read_ahead(fetch, None, lambda: True)
    next(pages)
    pages.close()
    assert len(calls) < 10
