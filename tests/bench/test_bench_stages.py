"""The stage-by-stage CPU split (bench/stages.py) at a smoke size: every stage runs
on real pages from the fake API, and the rows it shapes are all the pages hold."""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench.stages import fetch_pages, measure, stages
from exporter import json_codec


def test_every_stage_runs_on_the_fake_apis_pages() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        bodies = fetch_pages(120, 1, Path(tmp))
    assert len(bodies) == 3  # 50 locations a page
    calls = stages(bodies, 1)
    spent = measure(calls, 2)
    assert set(spent) == set(calls) and all(len(v) == 2 for v in spent.values())
    assert all(t >= 0 for v in spent.values() for t in v)
    shaped = calls["exporter: shape rows"]()
    locations = {i for page in shaped for i in page.location_ids}
    assert len(locations) == 120
    pages = [json_codec.loads(body)["data"] for body in bodies]
    assert sum(len(data) for data in pages) == 120
    joined = calls["exporter: join lines"]()
    rows = sum(n for chunks in joined.values() for _, n in chunks)
    assert rows == sum(sum(page.rows.values()) for page in shaped) > 0
    assert rows == sum(data.count(b"\n") for chunks in joined.values() for data, _ in chunks)
