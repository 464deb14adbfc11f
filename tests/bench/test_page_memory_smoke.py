"""The measurement behind the page cap (bench/page_memory.py) at a smoke size: the
worst page shape stays under the factor `api_answers.page_limit` assumes."""

from __future__ import annotations

from bench.page_memory import measure
from exporter.api_answers import PAGE_PEAK_FACTOR


def test_three_pages_of_tiny_objects_stay_under_the_assumed_factor() -> None:
    tiny = measure(2.0, 3, "tiny")
    assert tiny["rows"] == 0
    assert tiny["factor"] < PAGE_PEAK_FACTOR, tiny
    dense = measure(2.0, 3, "dense")
    assert dense["rows"] > 0
    assert dense["factor"] < tiny["factor"], (dense, tiny)
