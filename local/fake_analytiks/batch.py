"""v1, v2 and v4: named locations answered in one batch (by id, reference or zone)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from exporter.variants import VARIANTS
from local.fake_analytiks.cache import PageCache
from local.fake_analytiks.data import brand_of, location_ids, location_of_reference, zone_id
from local.fake_analytiks.protocol import UNAUTHORIZED, Query, Reply, bad, check_list, is_int
from local.fake_analytiks.records import Catalog, Item, render_records


class Batches:
    """Answers v1/v2/v4 requests. v1 and v4 refuse a batch with any location the
    client may not read; v2 answers the rest and lists the refused ones."""

    def __init__(self, cache: PageCache) -> None:
        self._cache = cache
        self._zones: dict[str, int] | None = None

    def answer(
        self,
        catalog: Catalog,
        variant: str,
        body: Mapping[str, Any],
        query: Query,
        allowed: frozenset[int] | None,
    ) -> bytes:
        items, failures = self._resolve(catalog, body, allowed)
        api = VARIANTS[variant]
        if failures and not api.skips_refused:
            raise Reply(401, {"message": UNAUTHORIZED, "locations": failures})
        if api.skips_refused and not items:
            raise Reply(401, {"message": UNAUTHORIZED, "locations": failures})
        key = (variant, tuple(items), tuple(failures), query, catalog.quirks.fingerprint())
        return self._cache.get(key, lambda: _render(catalog, variant, items, failures, query))

    def _zone_map(self, catalog: Catalog) -> dict[str, int]:
        if self._zones is None:
            self._zones = {
                zone_id(loc): loc
                for brand, n in catalog.brands.items()
                for loc in location_ids(brand, n)
            }
        return self._zones

    def _resolve(  # noqa: PLR0912 - one branch per request mode
        self, catalog: Catalog, body: Mapping[str, Any], allowed: frozenset[int] | None
    ) -> tuple[list[Item], list[int | str]]:
        """Requested (location, reference, zone) items that are allowed, and the rejected ids."""
        modes = [
            name
            for name, present in (
                ("locations", "locations" in body),
                ("brandId+referenceNumbers", "brandId" in body or "referenceNumbers" in body),
                ("zoneId", "zoneId" in body),
            )
            if present
        ]
        if len(modes) != 1:
            raise bad("send exactly one of: locations, brandId+referenceNumbers, zoneId")
        items: list[Item] = []
        failures: list[int | str] = []

        def ok(loc: int) -> bool:
            count = catalog.brands.get(brand_of(loc))
            known = count is not None and 1 <= loc % 100_000 <= count
            return known and (allowed is None or brand_of(loc) in allowed)

        if modes[0] == "locations":
            locs = check_list(body["locations"], "locations", int)
            for loc in dict.fromkeys(locs):
                (items.append((loc, None, None)) if ok(loc) else failures.append(loc))
        elif modes[0] == "zoneId":
            zone = body["zoneId"]
            if not isinstance(zone, str) or not zone:
                raise bad("zoneId must be a non-empty string")
            loc = self._zone_map(catalog).get(zone.lower())
            if loc is not None and ok(loc):
                items.append((loc, None, zone))
            else:
                failures.append(zone if loc is None else loc)
        else:
            brand = body.get("brandId")
            if not is_int(brand):
                raise bad("brandId must be an integer (required with referenceNumbers)")
            if "referenceNumbers" not in body:
                raise bad("referenceNumbers is required with brandId")
            refs = check_list(body["referenceNumbers"], "referenceNumbers", str)
            for ref in dict.fromkeys(refs):
                ref_loc = location_of_reference(ref)
                if ref_loc is not None and brand_of(ref_loc) == brand and ok(ref_loc):
                    items.append((ref_loc, ref, None))
                else:
                    failures.append(ref if ref_loc is None else ref_loc)
        return items, failures


def _render(
    catalog: Catalog, variant: str, items: list[Item], failures: list[int | str], query: Query
) -> bytes:
    api = VARIANTS[variant]
    records = render_records(catalog, items, query, zero_fill=api.zero_fill)
    if api.answer == "records":
        return orjson.dumps(records)
    fail: dict[str, object] = (
        {"description": UNAUTHORIZED, "locations": failures} if failures else {}
    )
    return orjson.dumps({"successes": records, "failures": fail})
