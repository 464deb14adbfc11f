"""The API's variants as entries (exporter.variants): what each one says, and that the
selection parser and the client choose by the entry, not by name."""

from __future__ import annotations

from typing import Any

import pytest

from exporter.errors import InvalidEvent
from exporter.selection import OPTION_FIELDS, parse_selection
from exporter.variants import (
    DEFAULT_SELECTION,
    SELECTION_VARIANTS,
    V1,
    V2,
    V3,
    V4,
    VARIANTS,
    by_path,
    selection_variant,
    variant,
)


def test_the_four_variants_as_the_api_document_describes_them() -> None:
    assert [(v.name, v.path) for v in VARIANTS.values()] == [
        (f"v{i}", f"/wifi/json/v{i}") for i in range(1, 5)
    ]
    assert (V1.answer, V1.refusal, V1.option, V1.zero_fill) == ("records", "fail", None, False)
    assert (V2.answer, V2.refusal, V2.option) == ("successes", "skip", "skipUnauthorized")
    assert (V3.answer, V3.selector) == ("page", False)
    assert (V4.answer, V4.refusal, V4.option, V4.zero_fill) == ("records", "fail", "zeroFill", True)
    assert [v.skips_refused for v in (V1, V2, V3, V4)] == [False, True, False, False]


def test_lookups() -> None:
    assert variant("v2") is V2 and by_path("/wifi/json/v4") is V4 and by_path("/x") is None
    assert SELECTION_VARIANTS == (V1, V2, V4) and DEFAULT_SELECTION is V1
    with pytest.raises(ValueError, match="not an API variant"):
        variant("v5")
    with pytest.raises(ValueError, match="not a selection variant"):
        selection_variant("v3")


def test_a_body_is_the_days_then_the_fields() -> None:
    body = V3.body("2023-06-01", "2023-06-02", brandId=5, cursor="c")
    assert body == {"startDate": "2023-06-01", "endDate": "2023-06-02", "brandId": 5, "cursor": "c"}


@pytest.mark.parametrize("chosen", SELECTION_VARIANTS, ids=lambda v: v.name)
def test_each_selection_variant_is_chosen_by_its_own_option(chosen: Any) -> None:
    event: dict[str, Any] = {"brandId": 1, "locations": [1]}
    if chosen.option:
        event[chosen.option] = True
    selection = parse_selection(event)
    assert selection is not None and selection.api is chosen
    assert set(OPTION_FIELDS) == {v.option for v in SELECTION_VARIANTS if v.option}


def test_two_options_are_refused_naming_both() -> None:
    with pytest.raises(InvalidEvent, match="skipUnauthorized/zeroFill: choose one"):
        parse_selection(
            {"brandId": 1, "locations": [1], "zeroFill": True, "skipUnauthorized": True}
        )
