"""The analytiks API's export variants, one entry each (docs/contracts.md, "Selections").

Everything that differs between v1..v4 is here: the URL path, what the request
body carries, the shape of the answer, and what a refused id does. The API
client, the selection parser, the finisher and the fake API read these
entries; none of them compares variant names. A v5 is one more entry (and its
tests). Standard library only: the fake API imports this module too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

# "page": {"data": [...], "cursor": ...} walked by cursor (v3); "records": a list of
# records; "successes": {"successes": [...], "failures": {"locations": [...]}} (v2).
Answer = Literal["page", "records", "successes"]
# What an id the API refuses does: "fail" the request, so the run (v1, v4), or "skip"
# it, listed as refused (v2). A whole-brand export refused (401) always fails.
Refusal = Literal["fail", "skip"]


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    answer: Answer
    refusal: Refusal
    # The on-demand event's boolean option that chooses this variant for a selection;
    # None: the selection default (v1), or not a selection variant (v3).
    option: str | None = None
    selector: bool = True  # takes a selector (locations / reference numbers / zone)
    zero_fill: bool = False  # every time bucket present, zeros written as 0

    @property
    def path(self) -> str:
        return f"/wifi/json/{self.name}"

    @property
    def skips_refused(self) -> bool:
        return self.refusal == "skip"

    def body(self, start: str, end: str, **fields: Any) -> dict[str, Any]:
        """A request's body: the days, then the selector (or `brandId` and `cursor`)."""
        return {"startDate": start, "endDate": end, **fields}


V1: Final = Variant("v1", answer="records", refusal="fail")
V2: Final = Variant("v2", answer="successes", refusal="skip", option="skipUnauthorized")
V3: Final = Variant("v3", answer="page", refusal="fail", selector=False)
V4: Final = Variant("v4", answer="records", refusal="fail", option="zeroFill", zero_fill=True)

VARIANTS: Final[Mapping[str, Variant]] = {v.name: v for v in (V1, V2, V3, V4)}
# The variants a selection may use, and the one it uses when no option is given.
SELECTION_VARIANTS: Final = tuple(v for v in VARIANTS.values() if v.selector)
DEFAULT_SELECTION: Final = V1
# The event's option fields, in the order they are documented.
OPTIONS: Final = tuple(v.option for v in SELECTION_VARIANTS if v.option)


def variant(name: str) -> Variant:
    """The variant called `name`; ValueError for any other."""
    found = VARIANTS.get(name)
    if found is None:
        raise ValueError(f"not an API variant: {name[:20]!r}")
    return found


def selection_variant(name: str) -> Variant:
    found = variant(name)
    if not found.selector:
        raise ValueError(f"not a selection variant: {name!r}")
    return found


def by_path(path: str) -> Variant | None:
    """The variant served at a URL path (`/wifi/json/v2`), or None."""
    return next((v for v in VARIANTS.values() if v.path == path), None)
