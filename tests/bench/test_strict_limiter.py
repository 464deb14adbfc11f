"""Issue 27's strict limiter: 6 pollers (real processes, the moto server's queue)
against a fake API that accepts at most 8 requests in any sliding second, with
`API_MAX_RPS=8` and `MAX_CONCURRENCY=6`. Adaptive pacing keeps the 429s under 5 %
of the export requests, the 5-s budget holds, and every row arrives exactly once
(checked from S3 by bench/scale.py, as in `make bench-scale`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_pollers_under_a_strict_one_second_limiter(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "bench.scale", "--smoke", "--only", "strict", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [s] = json.loads((out / "scale.json").read_text())["scenarios"]
    assert (s["scenario"], s["workers"], s["rate_limit"], s["sliding"]) == (
        "strict-w6-r8-s1",
        6,
        8.0,
        True,
    )
    # Two windows for each poller: six pacers at their share, side by side.
    assert s["checks"]["windows"] >= 12 and s["pages"] >= 240
    assert s["throttled_share"] < 0.05, f"{s['throttled']} of {s['requests']} refused"
    assert s["max_rate_5s"] <= 8
    checks = s["checks"]
    assert checks["ok"], checks["problems"]
    assert checks["rows"] == checks["expected_rows"] > 0 and checks["notifications"] == 1
    assert s["pages_served"] == s["pages"]  # each page served once: refusals were retried
