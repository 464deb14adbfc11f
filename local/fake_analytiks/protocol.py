"""What the API document says a request must look like: paths, fields, dates, errors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import orjson

from exporter.variants import VARIANTS
from local.fake_analytiks.data import MAX_RANGE, Basis, parse_api_date

AUDIENCE: Final = "https://gql.analytiks.ai"
DATA_PATHS: Final = {v.path: v.name for v in VARIANTS.values()}
TOKEN_PATHS: Final = ("/oauth/token", "/")
MAX_LOCATIONS: Final = 50
UNAUTHORIZED: Final = "You are not authorized to query these locations"

_V13_KEYS: Final = frozenset(
    {"startDate", "endDate", "locations", "brandId", "referenceNumbers", "zoneId"}
)
_V3_KEYS: Final = frozenset({"startDate", "endDate", "brandId", "cursor"})


class Reply(Exception):
    """Raised by request processing to answer with an error status."""

    def __init__(
        self, status: int, payload: Mapping[str, object], headers: Sequence[tuple[str, str]] = ()
    ):
        super().__init__(status)
        self.status = status
        self.payload = payload
        self.headers = headers


def bad(message: str) -> Reply:
    return Reply(400, {"message": message})


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Query:
    start: datetime
    end: datetime
    basis: Basis


def parse_body(variant: str, headers: Mapping[str, str], content: bytes) -> dict[str, Any]:
    """A data request's JSON object with only the fields its variant knows, or raises Reply."""
    ctype = (headers.get("content-type") or "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise bad("Content-Type must be application/json")
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        raise bad("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise bad("the request body must be a JSON object")
    allowed_keys = _V13_KEYS if VARIANTS[variant].selector else _V3_KEYS
    unknown = sorted(set(body) - allowed_keys)
    if unknown:
        raise bad(
            f"unknown field(s): {', '.join(unknown)} (allowed: {', '.join(sorted(allowed_keys))})"
        )
    return body


def parse_dates(body: Mapping[str, Any]) -> Query:
    parsed: list[tuple[datetime, Basis]] = []
    for name in ("startDate", "endDate"):
        value = body.get(name)
        if value is None:
            raise bad(f"{name} is required")
        if not isinstance(value, str):
            raise bad(f"{name} must be an ISO 8601 date-time string")
        try:
            parsed.append(parse_api_date(value))
        except ValueError as exc:
            raise bad(f"{name}: {exc}") from None
    (start, start_basis), (end, end_basis) = parsed
    if start_basis != end_basis:
        raise bad(
            "startDate and endDate must use the same format"
            " (both UTC with a final Z, or both local time without Z)"
        )
    if end < start:
        raise bad("endDate must not be before startDate")
    if end - start > MAX_RANGE:
        raise bad("a maximum of 5 days can be requested at once (endDate - startDate > 5 days)")
    return Query(start, end, start_basis)


def check_list(value: object, name: str, kind: type) -> list[Any]:
    what = "integers" if kind is int else "strings"
    if not isinstance(value, list):
        raise bad(f"{name} must be a list of {what}")
    if not 1 <= len(value) <= MAX_LOCATIONS:
        raise bad(f"{name} must contain 1 to {MAX_LOCATIONS} items (got {len(value)})")
    if not all((is_int(v) if kind is int else isinstance(v, str)) for v in value):
        raise bad(f"{name} must be a list of {what}")
    return value
