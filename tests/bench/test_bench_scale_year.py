"""`bench/scale_year.py` at a few days: a brand-year's start and commit timed in both modes.

Checks the machinery (both modes run, every run exactly once, the commit timed in
the pollers), not the figures (docs/performance.md, "A brand-year's start and commit").
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_scale_year_smoke(tmp_path: Path) -> None:
    smoke = ["--days", "4", "--workers", "2", "--latency", "0.02", "--out", str(tmp_path)]
    done = subprocess.run(
        [sys.executable, "-m", "bench.scale_year", *smoke],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    results = json.loads((tmp_path / "scale_year.json").read_text())
    for mode in ("parallel", "sequential"):
        figures = results[mode]
        assert figures["exactly_once"] is True
        assert 0 < figures["start_s"] < figures["wall_s"]
        assert figures["commit_s"] and all(0 < s < figures["wall_s"] for s in figures["commit_s"])
