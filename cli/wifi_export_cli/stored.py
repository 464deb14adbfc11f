"""Reading what S3 holds about a run without trusting its shape.

The run state and the history are written by the function, but anyone with
write access to the bucket (or an older or newer version of the function) may
have left something else there: every value is checked for its type before the
CLI uses it. A number that is not one makes its document malformed (`Malformed`
collects the names); `wifi-export runs` skips such history entries and says how
many it skipped, instead of failing for everyone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Malformed:
    """The fields of one document that were not what they should be."""

    fields: list[str] = field(default_factory=list)

    def count(self, doc: dict[str, Any], name: str, default: int = 0) -> int:
        """A stored count: a natural number, absent (or null) is `default`."""
        value = doc.get(name)
        if value is None:
            return default
        if type(value) is int and value >= 0:
            return value
        self.fields.append(name)
        return default

    def seconds(self, doc: dict[str, Any], name: str) -> float | None:
        value = doc.get(name)
        if value is None:
            return None
        if type(value) in (int, float) and math.isfinite(value) and value >= 0:
            return float(value)
        self.fields.append(name)
        return None


def text(value: Any) -> str | None:
    """A stored string, or None; anything else (a number, a list) as its JSON-ish text."""
    if value is None or isinstance(value, str):
        return value
    return str(value)


def mapping(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def ids(value: Any) -> list[int | str]:
    """Stored ids (refused ones): numbers and strings only, anything else dropped."""
    if not isinstance(value, list):
        return []
    return [i for i in value if isinstance(i, str) or (type(i) is int)]
