"""The chaos campaign reuses the integration lab (moto + fake API + handler).

`CHAOS_SIZE` (ci | full, default ci) sizes it; `CHAOS_REPORT=<path>` makes the
session write its table into that markdown file (`make chaos` does, into
docs/reliability.md).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from local.chaos import CampaignRow, write_report
from tests.integration.conftest import aws, make_lab

__all__ = ["aws", "campaign", "make_lab"]

SIZE = os.environ.get("CHAOS_SIZE", "ci").strip().lower() or "ci"
if SIZE not in ("ci", "full"):
    raise pytest.UsageError(f"CHAOS_SIZE: expected 'ci' or 'full', got {SIZE!r}")


@pytest.fixture(scope="session")
def campaign() -> Iterator[list[CampaignRow]]:
    rows: list[CampaignRow] = []
    started = time.monotonic()
    yield rows
    report = os.environ.get("CHAOS_REPORT", "").strip()
    if report and rows:
        order = {name: n for n, name in enumerate(dict.fromkeys(r.group for r in rows))}
        rows.sort(key=lambda r: order[r.group])
        write_report(Path(report), rows, SIZE, time.monotonic() - started)
