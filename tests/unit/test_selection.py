"""Selections: validation of the event's selector, batches, and request bodies."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.errors import InvalidEvent
from exporter.selection import BATCH_SIZE, MAX_SELECTION_IDS, Selection, parse_selection

ZONE = "11111111-1111-1111-1111-111111111111"


def parse(**fields: Any) -> Selection | None:
    return parse_selection({"brandId": 1234, **fields})


def test_no_selector_is_a_whole_brand_export() -> None:
    assert parse() is None


@pytest.mark.parametrize(
    ("fields", "variant"),
    [
        ({}, "v1"),
        ({"zeroFill": True}, "v4"),
        ({"skipUnauthorized": True}, "v2"),
        ({"zeroFill": False, "skipUnauthorized": False}, "v1"),
    ],
)
def test_the_options_choose_the_api_variant(fields: dict[str, Any], variant: str) -> None:
    selection = parse(locations=[1, 2], **fields)
    assert selection == Selection("locations", (1, 2), variant)


def test_each_selector_and_its_request_body() -> None:
    refs = parse(referenceNumbers=["US0658", "FR2561"])
    assert refs is not None
    assert refs.request_body(1234, 0) == {"brandId": 1234, "referenceNumbers": ["US0658", "FR2561"]}
    zone = parse(zoneId=ZONE.upper())
    assert zone is not None and zone.zone_id == ZONE  # canonical lower case
    assert zone.request_body(1234, 0) == {"zoneId": ZONE}


@given(st.lists(st.integers(1, 10**12), min_size=1, max_size=400, unique=True))
def test_batches_cover_the_ids_in_order_at_most_50_each(ids: list[int]) -> None:
    selection = parse(locations=ids)
    assert selection is not None
    batches = [selection.request_body(1, b)["locations"] for b in range(selection.batches)]
    assert all(1 <= len(b) <= BATCH_SIZE for b in batches)
    assert [i for b in batches for i in b] == ids


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"locations": []}, "locations: expected a non-empty list"),
        ({"locations": "1,2"}, "locations: expected a non-empty list"),
        ({"locations": [1, "2"]}, r"locations\[1\]: expected a positive integer"),
        ({"locations": [1, True]}, r"locations\[1\]: expected a positive integer"),
        ({"locations": [0]}, r"locations\[0\]"),
        ({"locations": [5, 6, 5]}, r"locations\[2\]: 5 is listed twice"),
        ({"locations": list(range(1, MAX_SELECTION_IDS + 2))}, "more than the maximum of 10,000"),
        ({"referenceNumbers": ["ok", ""]}, r"referenceNumbers\[1\]"),
        ({"referenceNumbers": ["a\nb"]}, r"referenceNumbers\[0\]"),
        ({"referenceNumbers": ["x" * 129]}, r"referenceNumbers\[0\]"),
        ({"zoneId": "not-a-uuid"}, "zoneId: expected a zone UUID"),
        ({"zoneId": 5}, "zoneId: expected a zone UUID"),
        ({"locations": [1], "zoneId": ZONE}, "locations/zoneId: give one selector"),
        ({"locations": [1], "zeroFill": True, "skipUnauthorized": True}, "choose one"),
        ({"locations": [1], "zeroFill": "yes"}, "zeroFill: expected true or false"),
        ({"zeroFill": True}, "zeroFill: only applies to a selection"),
        ({"brandIds": [1, 2], "locations": [1]}, "brandIds: a selection"),
    ],
)
def test_a_bad_selector_is_refused_naming_the_field(fields: dict[str, Any], problem: str) -> None:
    with pytest.raises(InvalidEvent, match=problem):
        parse(**fields)


def test_a_selection_survives_the_plan_round_trip() -> None:
    selection = Selection("referenceNumbers", ("A", "B"), "v2")
    assert Selection.from_dict(selection.to_dict()) == selection


def test_large_selections_fan_out_in_parts_of_20_batches() -> None:
    selection = parse(locations=list(range(1, 2_502)))  # 2,501 ids: 51 batches
    assert selection is not None
    assert (selection.batches, selection.parts) == (51, 3)
    assert [list(selection.part_batches(p)) for p in range(3)] == [
        list(range(0, 20)),
        list(range(20, 40)),
        [40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50],
    ]
    assert selection.part_ids(2) == tuple(range(2_001, 2_502))
