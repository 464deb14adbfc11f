"""v3: a brand's locations in pages, chained by signed cursors."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from typing import Any

import orjson

from local.fake_analytiks.cache import PageCache
from local.fake_analytiks.data import reference_number
from local.fake_analytiks.protocol import Query, Reply, bad, is_int
from local.fake_analytiks.records import Catalog, render_records


class Pages:
    """Answers v3 requests; cursors are signed with a per-server key, so a cursor
    from another server (or another query) is refused."""

    def __init__(self, cache: PageCache) -> None:
        self._key = secrets.token_bytes(32)
        self._cache = cache

    def answer(
        self,
        catalog: Catalog,
        body: Mapping[str, Any],
        query: Query,
        allowed: frozenset[int] | None,
    ) -> bytes:
        if "brandId" not in body or not is_int(body["brandId"]):
            raise bad("brandId must be an integer")
        brand: int = body["brandId"]
        cursor = body.get("cursor")
        if cursor is not None and not isinstance(cursor, str):
            raise bad("cursor must be a string or null")
        count = catalog.brands.get(brand)
        if count is None or (allowed is not None and brand not in allowed):
            raise Reply(401, {"message": f"You are not authorized to query brand {brand}"})
        digest = _query_digest(brand, query)
        offset = 0 if not cursor else self._read_cursor(cursor, digest, count)
        end = min(offset + catalog.page_size, count)
        next_cursor = self._make_cursor(end, digest) if end < count else None
        first = brand * 100_000
        items = [
            (loc, reference_number(loc), None) for loc in range(first + offset + 1, first + end + 1)
        ]

        def render() -> bytes:
            records = render_records(catalog, items, query, False)
            return orjson.dumps({"cursor": next_cursor, "data": records})

        return self._cache.get(("v3", brand, query, offset, catalog.quirks.fingerprint()), render)

    def _make_cursor(self, offset: int, digest: str) -> str:
        payload = orjson.dumps({"o": offset, "q": digest})
        sig = hmac.new(self._key, payload, hashlib.sha256).digest()[:16]
        return _b64(payload) + "." + _b64(sig)

    def _read_cursor(self, cursor: str, digest: str, count: int) -> int:
        try:
            p64, s64 = cursor.split(".")
            payload, sig = _unb64(p64), _unb64(s64)
        except ValueError:
            raise bad("invalid cursor: malformed") from None
        expected = hmac.new(self._key, payload, hashlib.sha256).digest()[:16]
        if not hmac.compare_digest(sig, expected):
            raise bad("invalid cursor: bad signature (not issued by this server)")
        data = orjson.loads(payload)
        if data["q"] != digest:
            raise bad("invalid cursor: it belongs to another query (brandId/startDate/endDate)")
        offset = int(data["o"])
        if not 0 <= offset < max(count, 1):
            raise bad("invalid cursor: out of range")
        return offset


def _query_digest(brand: int, query: Query) -> str:
    text = f"{brand}|{query.start.isoformat()}|{query.end.isoformat()}|{query.basis}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    if not text:
        raise ValueError("empty")
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
