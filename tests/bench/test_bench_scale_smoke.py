"""`bench/scale.py --smoke`: the scale benchmark's harness end to end at tiny sizes.

N poller processes drain the real (moto server) queue against the fake API with
latency and a rate limit; every run is checked exactly-once from S3. This checks
the machinery and its checks, not the figures (docs/performance.md, "Scale").
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import date
from pathlib import Path

import pytest

from bench import scale_check, scale_report
from local.fake_analytiks import expected_rows

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("brand", "locations", "day"), [(9101, 60, date(2023, 1, 1)), (42, 7, date(2024, 2, 29))]
)
def test_fast_expected_counts_agree_with_the_data_model(
    brand: int, locations: int, day: date
) -> None:
    rows = sum(
        1 for _ in expected_rows(brand, locations, f"{day}T00:00:00.000Z", f"{day}T23:59:59.999Z")
    )
    assert scale_check.expected_count(brand, locations, day) == rows > 0


def test_bench_scale_smoke(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = subprocess.run(
        # The strict-limiter case has its own test (test_strict_limiter.py).
        [sys.executable, "-m", "bench.scale", "--smoke", "--no-strict", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((out / "scale.json").read_text())
    scenarios = {s["scenario"]: s for s in results["scenarios"]}
    assert set(scenarios) == {
        "backfill-w1",
        "backfill-w2",
        "nightly-w1",
        "nightly-w2",
        "backfill-w8-r20",
        "nightly-w8-r20",
    }
    for name, s in scenarios.items():
        checks = s["checks"]
        assert checks["ok"], (name, checks["problems"])
        assert (
            checks["notifications"]
            == checks["runs"]
            == len(results["config"]["workloads"][s["workload"]]["brands"])
        )
        assert checks["rows"] == checks["expected_rows"] > 0
        assert s["pages_served"] == s["pages"], name  # each page asked for once
        assert s["wall_s"] > 0 and s["limit_s"] > 0 and s["invocations"] >= checks["runs"]
        assert s["aws_calls"]["sns.Publish"] == checks["runs"]
    limited = scenarios["nightly-w8-r20"]
    assert limited["max_rate_5s"] <= 20 and limited["throttled"] == 0
    # Every cost line is there and counted from the run.
    lines = results["cost"]["scenarios"]["backfill-w1"]["lines"]
    assert [line["line"] for line in lines] == [
        "Lambda duration",
        "Lambda requests",
        "S3 PUT/COPY/POST/LIST",
        "S3 GET/HEAD",
        "SQS requests",
        "SNS publishes",
        "Secrets Manager",
        "CloudWatch Logs",
    ]
    assert all(line["usd"] > 0 for line in lines)
    assert all(t["met"] for t in results["targets"]), results["targets"]
    ET.fromstring((out / "bench-scale.svg").read_text())  # noqa: S314 -- our own file: well-formed
    page = (out / "performance.md").read_text()
    assert scale_report.SCALE_START in page and scale_report.SCALE_END in page
    assert "Cost per brand-day" in page and "bench-scale.svg" in page
